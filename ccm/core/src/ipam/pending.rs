//! Why a Service cannot get (all of) its addresses yet. Each reason carries what an operator
//! needs to act; its `Display` is a complete sentence (cause included) for an Event or a
//! condition message, and [`Pending::reason`] is the stable CamelCase condition reason.

use std::fmt;
use std::net::IpAddr;

use thiserror::Error;

use super::pool::Ineligibility;
use super::range::Family;
use super::request::{IpFamilyPolicy, Protocol, RequestError, ServiceKey};

/// Pool names as `a, b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolNames(pub Vec<String>);

impl fmt::Display for PoolNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(", "))
    }
}

/// The pool a requested address was looked for in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Searched {
    /// The pool named by the Service.
    Named(String),
    /// Every pool whose scope admits the Service.
    InScope,
}

impl fmt::Display for Searched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Searched::Named(pool) => write!(f, "pool {pool}"),
            Searched::InScope => f.write_str("any pool that serves this Service"),
        }
    }
}

/// Why an assignment cannot be made now. The Service keeps whatever it already held.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Pending {
    #[error("pool {pool} does not exist")]
    UnknownPool { pool: String },
    #[error("pool {pool} does not serve this Service: {why}")]
    PoolNotEligible {
        pool: String,
        #[source]
        why: Ineligibility,
    },
    #[error("no pool serves this Service; check the pools' autoAssign and allocation scopes")]
    NoEligiblePool,
    #[error("requested address {address} is not in {searched}")]
    RequestedOutsidePools { address: IpAddr, searched: Searched },
    #[error("requested address {address} is {family}, but the Service asks for {asked} only")]
    RequestedFamilyNotAsked {
        address: IpAddr,
        family: Family,
        asked: Family,
    },
    #[error("address {address} is in use by {holder}")]
    AddressInUse { address: IpAddr, holder: ServiceKey },
    #[error("address {address} cannot be shared with {holder}: both use {protocol}/{port}")]
    SharingPortClash {
        address: IpAddr,
        holder: ServiceKey,
        protocol: Protocol,
        port: u16,
    },
    #[error(
        "address {address} is held by {holder} in another namespace and pool {pool} does not allow cross-namespace sharing"
    )]
    CrossNamespaceSharing {
        address: IpAddr,
        holder: ServiceKey,
        pool: String,
    },
    #[error("no free {family} address in pool {pools}")]
    PoolExhausted { family: Family, pools: PoolNames },
    #[error("{policy} needs an {family} address, but no pool that serves this Service has one")]
    ImpossibleFamilyRequest {
        family: Family,
        policy: IpFamilyPolicy,
    },
    #[error("annotation {annotation} is malformed: {error}")]
    MalformedAnnotation {
        annotation: String,
        #[source]
        error: RequestError,
    },
    #[error("the request is invalid: {error}")]
    InvalidRequest {
        #[source]
        error: RequestError,
    },
}

impl Pending {
    /// The stable condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Pending::UnknownPool { .. } => "UnknownPool",
            Pending::PoolNotEligible { .. } => "PoolNotEligible",
            Pending::NoEligiblePool => "NoEligiblePool",
            Pending::RequestedOutsidePools { .. } => "RequestedAddressOutsidePool",
            Pending::RequestedFamilyNotAsked { .. } => "RequestedFamilyNotAsked",
            Pending::AddressInUse { .. } => "AddressInUse",
            Pending::SharingPortClash { .. } => "SharingPortClash",
            Pending::CrossNamespaceSharing { .. } => "CrossNamespaceSharingNotAllowed",
            Pending::PoolExhausted { .. } => "PoolExhausted",
            Pending::ImpossibleFamilyRequest { .. } => "ImpossibleFamilyRequest",
            Pending::MalformedAnnotation { .. } => "MalformedAnnotation",
            Pending::InvalidRequest { .. } => "InvalidRequest",
        }
    }

    /// For annotation parse failures found by the caller.
    pub fn malformed(annotation: &str, error: RequestError) -> Pending {
        Pending::MalformedAnnotation {
            annotation: annotation.to_owned(),
            error,
        }
    }
}
