mod client;
mod descriptor;
mod wire;
