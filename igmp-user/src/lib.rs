//! igmp-snoop's user-space half: loader, control loop and table views.

pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod expiry;
pub mod generate;
pub mod instance;
pub mod interfaces;
pub mod kernel;
pub mod layout;
pub mod leaves;
pub mod links;
pub mod loader;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod options;
pub mod ports;
pub mod querier;
pub mod settings;
pub mod signals;
pub mod systemd;
pub mod tables;
pub mod timers;
pub mod view;
