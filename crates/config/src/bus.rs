//! `[bus]`: how the pipeline stages talk (REQUIREMENTS §3.9). `memory` (default): in-process, one
//! machine. `kafka`: a Kafka-protocol cluster, so stages can run as separate workers (issue 9).

use std::collections::HashMap;

use serde::Deserialize;

use crate::interpolate;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBus {
    /// `memory` (default) or `kafka`.
    pub backend: Option<String>,
    /// `host:port[,host:port…]` (kafka); `${VAR}` is interpolated.
    pub brokers: Option<String>,
    /// Put before every topic and consumer-group name (deployments sharing a cluster); default none.
    pub topic_prefix: Option<String>,
    /// Default `aluskort`.
    pub client_id: Option<String>,
    /// Replication factor of the topics ALUSKORT creates (default 1; 3 on a production cluster).
    pub replication: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BusConfig {
    #[default]
    Memory,
    Kafka {
        brokers: String,
        topic_prefix: String,
        client_id: String,
        replication: i32,
    },
}

pub(crate) fn validate_bus(raw: RawBus, env: &HashMap<String, String>, errors: &mut Vec<String>) -> BusConfig {
    match raw.backend.as_deref().unwrap_or("memory") {
        "memory" => {
            if raw.brokers.is_some() || raw.topic_prefix.is_some() || raw.client_id.is_some() || raw.replication.is_some() {
                errors.push("`bus`: kafka settings given but `bus.backend` is not \"kafka\"".to_owned());
            }
            BusConfig::Memory
        }
        "kafka" => {
            let unset = errors.len();
            let brokers = interpolate("bus.brokers", &raw.brokers.unwrap_or_default(), env, errors);
            if errors.len() == unset
                && brokers.split(',').any(|broker| {
                    let broker = broker.trim();
                    broker.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
                })
            {
                errors.push(format!("`bus.brokers`: {brokers:?} must be host:port[,host:port...]"));
            }
            let topic_prefix = raw.topic_prefix.unwrap_or_default();
            if !topic_prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
                errors.push(format!(
                    "`bus.topic_prefix`: {topic_prefix:?} may hold only letters, digits, '.', '_' and '-' (Kafka topic names)"
                ));
            }
            let replication = raw.replication.unwrap_or(1);
            if !(1..=7).contains(&replication) {
                errors.push(format!("`bus.replication`: {replication} must be 1..=7"));
            }
            BusConfig::Kafka { brokers, topic_prefix, client_id: raw.client_id.unwrap_or_else(|| "aluskort".to_owned()), replication }
        }
        other => {
            errors.push(format!("`bus.backend`: unknown backend {other:?} (expected \"memory\" or \"kafka\")"));
            BusConfig::Memory
        }
    }
}
