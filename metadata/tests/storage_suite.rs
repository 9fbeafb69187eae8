//! openraft's storage conformance suite run against the sled log store and
//! state machine.

use std::sync::Arc;

use distlog_metadata::store::{LogStore, SledStore, StateMachineStore};
use distlog_metadata::typ::{StorageError, TypeConfig};
use distlog_metadata::MetaState;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageIOError};
use parking_lot::RwLock;

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for SledBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
        let io = |e: String| -> StorageError { StorageIOError::write(AnyError::error(e)).into() };
        let dir = tempfile::tempdir().map_err(|e| io(e.to_string()))?;
        let sled = SledStore::open(dir.path()).map_err(|e| io(e.to_string()))?;
        let (events, _) = tokio::sync::broadcast::channel(16);
        let state = Arc::new(RwLock::new(MetaState::default()));
        let sm = StateMachineStore::open(sled.clone(), state, events).map_err(|e| io(e.to_string()))?;
        Ok((dir, LogStore::new(sled), sm))
    }
}

#[test]
fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(SledBuilder) {
        panic!("storage suite failed: {e}");
    }
}
