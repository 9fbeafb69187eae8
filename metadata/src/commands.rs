//! Typed calls on [`MetadataStore`]: one per command the log layer and the
//! broker send, each returning the reply its command has. A reply of the
//! wrong kind is [`MetadataError::UnexpectedResponse`], never a caller's
//! guess, so the one mapping of metadata errors to Kafka codes (in the
//! broker) sees every such failure alike.

use std::collections::BTreeMap;

use crate::client::MetadataStore;
use crate::error::MetadataError;
use crate::model::{Command, CommandResponse, LedgerId, SegmentMeta, SegmentSeal, StreamId};
use crate::NodeId;

/// Typed calls: one per command the log layer and the broker send, each
/// returning the reply its command has (an unexpected reply kind is
/// [`MetadataError::UnexpectedResponse`], never a caller's guess).
impl MetadataStore {
    /// Hand out a fresh ledger id ([`Command::AllocateLedgerId`]).
    pub async fn allocate_ledger(&self) -> Result<LedgerId, MetadataError> {
        match self.write(Command::AllocateLedgerId).await? {
            CommandResponse::LedgerId(id) => Ok(id),
            other => Err(unexpected("AllocateLedgerId", other)),
        }
    }

    /// Hand out a block of `count` producer ids and return the first
    /// ([`Command::AllocateProducerIds`]); `count` must be positive.
    pub async fn allocate_producer_ids(&self, count: u64) -> Result<u64, MetadataError> {
        match self.write(Command::AllocateProducerIds { count }).await? {
            CommandResponse::ProducerId(first) => Ok(first),
            other => Err(unexpected("AllocateProducerIds", other)),
        }
    }

    /// Replace a topic's config overrides ([`Command::AlterTopicConfigs`]).
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), MetadataError> {
        let cmd = Command::AlterTopicConfigs {
            name: name.to_string(),
            configs,
        };
        match self.write(cmd).await? {
            CommandResponse::Ok => Ok(()),
            other => Err(unexpected("AlterTopicConfigs", other)),
        }
    }

    /// Replace the dynamic broker configs of `broker` (`None`: the
    /// cluster-wide defaults) ([`Command::AlterBrokerConfigs`]).
    pub async fn alter_broker_configs(
        &self,
        broker: Option<NodeId>,
        configs: BTreeMap<String, String>,
    ) -> Result<(), MetadataError> {
        match self
            .write(Command::AlterBrokerConfigs { broker, configs })
            .await?
        {
            CommandResponse::Ok => Ok(()),
            other => Err(unexpected("AlterBrokerConfigs", other)),
        }
    }

    /// Apply a transaction op ([`Command::Txn`]); a refusal is
    /// `MetadataError::Rejected(ApplyError::Txn(_))`.
    pub async fn txn(&self, op: crate::transaction::TxnOp) -> Result<CommandResponse, MetadataError> {
        self.write(Command::Txn(op)).await
    }

    /// Make `owner` the stream's owner and return the new owner epoch
    /// ([`Command::AcquireStream`]); `expected_epoch`, when set, must be
    /// the current one.
    pub async fn acquire_stream(
        &self,
        stream: StreamId,
        owner: NodeId,
        expected_epoch: Option<u64>,
    ) -> Result<u64, MetadataError> {
        let cmd = Command::AcquireStream {
            stream,
            owner,
            expected_epoch,
        };
        match self.write(cmd).await? {
            CommandResponse::Epoch(epoch) => Ok(epoch),
            other => Err(unexpected("AcquireStream", other)),
        }
    }

    /// Append a new InProgress segment under `owner_epoch`
    /// ([`Command::AddSegment`]).
    pub async fn add_segment(
        &self,
        stream: StreamId,
        owner_epoch: u64,
        segment: SegmentMeta,
    ) -> Result<(), MetadataError> {
        let cmd = Command::AddSegment {
            stream,
            owner_epoch,
            segment,
        };
        match self.write(cmd).await? {
            CommandResponse::Ok => Ok(()),
            other => Err(unexpected("AddSegment", other)),
        }
    }

    /// Seal InProgress segment `seal.lssn` under `owner_epoch`
    /// ([`Command::CompleteSegment`]).
    pub async fn seal_segment(
        &self,
        stream: StreamId,
        owner_epoch: u64,
        seal: SegmentSeal,
    ) -> Result<(), MetadataError> {
        let cmd = Command::CompleteSegment {
            stream,
            owner_epoch,
            seal,
        };
        match self.write(cmd).await? {
            CommandResponse::Ok => Ok(()),
            other => Err(unexpected("CompleteSegment", other)),
        }
    }

    /// Seal the last segment and append `next` in one step
    /// ([`Command::RollSegment`]).
    pub async fn roll_segment(
        &self,
        stream: StreamId,
        owner_epoch: u64,
        seal: SegmentSeal,
        next: SegmentMeta,
    ) -> Result<(), MetadataError> {
        let cmd = Command::RollSegment {
            stream,
            owner_epoch,
            seal,
            next,
        };
        match self.write(cmd).await? {
            CommandResponse::Ok => Ok(()),
            other => Err(unexpected("RollSegment", other)),
        }
    }

    /// Move the stream's log start offset forward and drop the segments
    /// wholly below it ([`Command::TruncateStream`]); returns the ledgers
    /// released, for the segment store to delete.
    pub async fn truncate_stream(
        &self,
        stream: StreamId,
        log_start_offset: u64,
    ) -> Result<Vec<LedgerId>, MetadataError> {
        let cmd = Command::TruncateStream {
            stream,
            log_start_offset,
        };
        match self.write(cmd).await? {
            CommandResponse::ReleasedLedgers(ledgers) => Ok(ledgers),
            other => Err(unexpected("TruncateStream", other)),
        }
    }
}

/// The error for a reply of the wrong kind to `command`.
fn unexpected(command: &'static str, response: CommandResponse) -> MetadataError {
    MetadataError::UnexpectedResponse {
        command,
        response: format!("{response:?}"),
    }
}
