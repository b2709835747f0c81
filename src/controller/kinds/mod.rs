//! The kinds of root the controller handles, one module each.

pub mod gateway;
pub mod ingress;
