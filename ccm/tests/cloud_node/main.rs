//! The node controllers, in one test binary: with the static provider (`static_provider`),
//! the OpenNebula provider as a library against a fake XML-RPC server
//! (`opennebula_provider`), and the controllers with that provider (`opennebula`).

mod opennebula;
mod opennebula_provider;
mod static_provider;
