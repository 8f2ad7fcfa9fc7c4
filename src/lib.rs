//! ringkv: a Dynamo-style distributed key-value store on actix.
//!
//! # Layout
//!
//! | module | job |
//! |---|---|
//! | `main.rs` | the CLI: `ringkv node`, `ringkv dev`, `ringkv admin`, `ringkv bench` |
//! | [`admin`] | `ringkv admin members / ring / repair`: the admin extensions as nodetool-like tables |
//! | [`config`] | [`NodeConfig`] from flags and a TOML file, validated once at start-up |
//! | [`node`] | builds one node: listeners, storage, every actor and its collaborators |
//! | [`client`] | the async Rust [`Client`] (pipelined; used by examples, tests, benches) |
//! | [`bench`](mod@bench) | `ringkv bench`: mixed workloads, HDR latency, node CPU per op from `/proc`, JSON, SVG plot |
//! | [`dev`] | `ringkv dev`: a local cluster of node processes |
//! | [`metrics_http`] | the `--metrics-listen` endpoint: `GET /metrics` in the Prometheus text format |
//! | [`logging`] | tracing set-up: pretty or JSON lines, `RUST_LOG` |
//! | [`huge_pages`] | transparent huge pages off for the process, first thing in `main` (why: the module's doc) |
//! | [`event_loop`] | the event loop's lag, sampled into `ringkv_event_loop_lag_seconds` (and logged when long) |
//!
//! The actors themselves, and the map of who sends what to whom, live in the
//! `ringkv-actors` crate (`actors/src/lib.rs`).
#![deny(clippy::unwrap_used)]

pub mod admin;
pub mod bench;
pub mod client;
pub mod config;
pub mod data_dir;
pub mod dev;
pub mod event_loop;
pub mod huge_pages;
pub mod logging;
pub mod metrics_http;
pub mod node;

pub use client::Client;
pub use config::NodeConfig;
