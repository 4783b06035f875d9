//! Diagnostics: `kafka-inspect BROKERS TOPIC GROUP [dump]` prints, per partition, the low and high
//! watermarks and the group's committed offset; with `dump`, every message's partition, offset and key.
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (brokers, topic, group) = (&args[1], &args[2], &args[3]);
    let timeout = Duration::from_secs(10);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), timeout).expect("metadata");
    let mut list = TopicPartitionList::new();
    for found in metadata.topics().iter().filter(|found| found.name() == topic) {
        for partition in found.partitions() {
            list.add_partition(topic, partition.id());
        }
    }
    let committed = consumer.committed_offsets(list.clone(), timeout).expect("committed");
    let mut highs = Vec::new();
    for element in committed.elements() {
        let (low, high) = consumer.fetch_watermarks(topic, element.partition(), timeout).expect("watermarks");
        println!("partition {} low {low} high {high} committed {:?}", element.partition(), element.offset());
        highs.push((element.partition(), high));
    }
    if args.get(4).map(String::as_str) == Some("dump") {
        let mut assign = TopicPartitionList::new();
        for (partition, _) in &highs {
            assign.add_partition_offset(topic, *partition, Offset::Beginning).expect("add");
        }
        consumer.assign(&assign).expect("assign");
        let mut done = 0;
        let mut eof = std::collections::HashSet::new();
        while eof.len() < highs.len() {
            match consumer.poll(timeout) {
                Some(Ok(message)) => {
                    let key = message.key().map(|key| String::from_utf8_lossy(key).into_owned()).unwrap_or_default();
                    println!("msg {} {} {key}", message.partition(), message.offset());
                    done += 1;
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                    eof.insert(partition);
                }
                Some(Err(error)) => eprintln!("error: {error}"),
                None => break,
            }
        }
        eprintln!("dumped {done} messages");
    }
}
