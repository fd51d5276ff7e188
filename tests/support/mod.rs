//! Helpers shared by the end-to-end tests.

pub mod bind9;
pub mod cli;
pub mod hosts;
pub mod moto;
pub mod ngircd;
// A throwaway PostgreSQL server, for the daemon's tests of a shared queue; the store's
// tests include the same file.
#[allow(dead_code)]
pub mod postgres;
