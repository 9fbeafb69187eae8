//! Fault-injection helpers: a producer that writes continuously while nodes
//! die, and the zero-loss check of what it was told was acknowledged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::Offset;

use crate::kafka::{self, Delivery};

/// One message the continuous producer sent, and what became of it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Message id; the payload is `m{id}`.
    pub id: usize,
    /// When it was handed to the client.
    pub sent_at: Instant,
    /// When its delivery report arrived, and the offset or the error.
    pub outcome: Option<(Instant, Result<i64, String>)>,
}

/// A producer (acks=all, no client retries, so every acknowledged message
/// was written exactly once) sending `m{id}` to partition 0 of a topic
/// about every `interval` until stopped.
pub struct ContinuousProducer {
    stop: Arc<AtomicBool>,
    sent: Arc<Mutex<Vec<Sent>>>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl ContinuousProducer {
    /// Start sending; `extra` overrides producer settings.
    pub fn start(
        bootstrap: &str,
        topic: &str,
        interval: Duration,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut config = kafka::producer_config(bootstrap, "all");
        config
            .set("message.send.max.retries", "0")
            .set("linger.ms", "2")
            .set("topic.metadata.refresh.interval.ms", "1000");
        for (k, v) in extra {
            config.set(*k, *v);
        }
        let producer = kafka::recording_producer(&config)?;
        let stop = Arc::new(AtomicBool::new(false));
        let sent: Arc<Mutex<Vec<Sent>>> = Arc::new(Mutex::new(Vec::new()));
        let (stop2, sent2, topic) = (stop.clone(), sent.clone(), topic.to_string());
        let thread = thread::spawn(move || -> anyhow::Result<()> {
            let record = |d: Delivery, sent: &Mutex<Vec<Sent>>| {
                let mut s = sent.lock().unwrap_or_else(|e| e.into_inner());
                s[d.id].outcome = Some((Instant::now(), d.result.map_err(|e| e.message)));
            };
            let mut id = 0usize;
            while !stop2.load(Ordering::Acquire) {
                let payload = format!("m{id}");
                sent2.lock().unwrap_or_else(|e| e.into_inner()).push(Sent {
                    id,
                    sent_at: Instant::now(),
                    outcome: None,
                });
                let rec = BaseRecord::<(), String, Box<usize>>::with_opaque_to(&topic, Box::new(id))
                    .partition(0)
                    .payload(&payload);
                if let Err((e, _)) = producer.send(rec) {
                    let mut s = sent2.lock().unwrap_or_else(|e| e.into_inner());
                    s[id].outcome = Some((Instant::now(), Err(format!("enqueue: {e}"))));
                }
                id += 1;
                producer.poll(Duration::ZERO);
                for d in producer.context().take() {
                    record(d, &sent2);
                }
                thread::sleep(interval);
            }
            let _ = producer.flush(Duration::from_secs(60));
            producer.poll(Duration::ZERO);
            for d in producer.context().take() {
                record(d, &sent2);
            }
            Ok(())
        });
        Ok(ContinuousProducer {
            stop,
            sent,
            thread: Some(thread),
        })
    }

    /// A copy of what was sent so far.
    pub fn snapshot(&self) -> Vec<Sent> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Wait until a message sent after `after` is acknowledged; returns the
    /// time from `after` to that acknowledgement.
    pub fn wait_ack_of_message_sent_after(
        &self,
        after: Instant,
        within: Duration,
    ) -> anyhow::Result<Duration> {
        let deadline = after + within;
        loop {
            let first = self
                .snapshot()
                .iter()
                .filter(|s| s.sent_at > after)
                .filter_map(|s| match &s.outcome {
                    Some((at, Ok(_))) => Some(*at),
                    _ => None,
                })
                .min();
            if let Some(at) = first {
                return Ok(at - after);
            }
            if Instant::now() >= deadline {
                let errors: Vec<String> = self
                    .snapshot()
                    .iter()
                    .filter(|s| s.sent_at > after)
                    .filter_map(|s| s.outcome.as_ref().and_then(|(_, r)| r.clone().err()))
                    .take(3)
                    .collect();
                bail!(
                    "no message sent after the fault was acknowledged within {within:?} (errors: {errors:?})"
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop sending, wait for every outstanding delivery report, and return
    /// everything sent.
    pub fn stop(mut self) -> anyhow::Result<Vec<Sent>> {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.join()
                .map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
        }
        Ok(self.snapshot())
    }
}

impl Drop for ContinuousProducer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Acknowledged (id, offset) pairs of `sent`.
pub fn acknowledged(sent: &[Sent]) -> Vec<(usize, i64)> {
    sent.iter()
        .filter_map(|s| match &s.outcome {
            Some((_, Ok(offset))) => Some((s.id, *offset)),
            _ => None,
        })
        .collect()
}

/// Read partition 0 of `topic` from offset 0 to its high watermark and
/// check that every acknowledged message is there exactly once, at the
/// offset its acknowledgement named, and that offsets are dense. Returns
/// the number of records read.
pub fn verify_zero_loss(bootstrap: &str, topic: &str, acked: &[(usize, i64)]) -> anyhow::Result<usize> {
    verify(bootstrap, topic, acked, false).map(|(n, _)| n)
}

/// [`verify_zero_loss`] without the exactly-once part: every acknowledged
/// message is at the offset its acknowledgement named, and the returned
/// list names the acknowledged messages that also appear elsewhere.
pub fn verify_no_loss(
    bootstrap: &str,
    topic: &str,
    acked: &[(usize, i64)],
) -> anyhow::Result<(usize, Vec<String>)> {
    verify(bootstrap, topic, acked, true)
}

fn verify(
    bootstrap: &str,
    topic: &str,
    acked: &[(usize, i64)],
    allow_duplicates: bool,
) -> anyhow::Result<(usize, Vec<String>)> {
    let (low, high) = kafka::watermarks(bootstrap, topic, 0)?;
    if low != 0 {
        bail!("log start offset moved to {low}");
    }
    let consumer: BaseConsumer =
        kafka::assigned_consumer(&kafka::consumer_config(bootstrap), topic, 0, Offset::Offset(0))?;
    let records = kafka::poll_n_across_failures(&consumer, high as usize, Duration::from_secs(60))
        .with_context(|| format!("read {high} records of {topic}"))?;
    let mut at: HashMap<i64, String> = HashMap::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        if r.offset != i as i64 {
            bail!("offset {} at position {i}: offsets are not dense", r.offset);
        }
        let payload = String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default()).to_string();
        *seen.entry(payload.clone()).or_default() += 1;
        at.insert(r.offset, payload);
    }
    let mut duplicates = Vec::new();
    for (id, offset) in acked {
        let want = format!("m{id}");
        match at.get(offset) {
            Some(p) if *p == want => {}
            other => bail!("acknowledged {want} at offset {offset}, but the log holds {other:?} there"),
        }
        if seen[&want] != 1 && allow_duplicates {
            duplicates.push(format!("{want}@{offset}"));
        } else if seen[&want] != 1 {
            let offsets: Vec<i64> = records
                .iter()
                .filter(|r| r.payload.as_deref() == Some(want.as_bytes()))
                .map(|r| r.offset)
                .collect();
            bail!(
                "acknowledged {want} (at offset {offset}) appears {} times, at offsets {offsets:?}",
                seen[&want]
            );
        }
    }
    Ok((records.len(), duplicates))
}
