//! The live event feed in Redis: one capped stream, `P` + `events`, that every server (and
//! every operator command) appends to with `XADD … MAXLEN ~ 10000`, and `sessions watch`
//! follows with `XREAD BLOCK`. On a cluster the stream lives in one slot, like any key.

use async_trait::async_trait;

use super::RedisBackend;
use crate::{
    audit::feed::{EventFeed, FeedEvent},
    session::store::StoreError,
};

/// About how many events the stream keeps (a watcher that falls further behind skips ahead).
const KEEP: usize = 10_000;
/// The stream goes away an hour after its last event (the audit table keeps them all).
const IDLE_TTL_SECS: u64 = 3600;
/// How long one read waits for new events, in milliseconds (below the connection's reply
/// timeout).
const BLOCK_MS: usize = 1_000;

#[derive(Clone)]
pub struct RedisFeed(pub RedisBackend);

impl RedisFeed {
    fn key(&self) -> String {
        self.0.key(format_args!("events"))
    }
}

/// `XREAD`'s reply for one stream: `[[key, [[id, [field, value, …]], …]]]`, or nil when the
/// wait ended with nothing.
type StreamReply = Option<Vec<(String, Vec<(String, Vec<String>)>)>>;

fn corrupt(what: String) -> StoreError {
    StoreError::Corrupt(what.into())
}

#[async_trait]
impl EventFeed for RedisFeed {
    async fn publish(&self, events: &[FeedEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let key = self.key();
        let mut pipe = redis::pipe();
        for event in events {
            let json = serde_json::to_string(event).map_err(|e| corrupt(e.to_string()))?;
            pipe.cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(KEEP)
                .arg("*")
                .arg("e")
                .arg(json)
                .ignore();
        }
        // Like every key authauth writes, it expires.
        pipe.cmd("EXPIRE").arg(&key).arg(IDLE_TTL_SECS).ignore();
        let () = pipe.query_async(&mut self.0.conn()).await?;
        Ok(())
    }

    async fn tail(&self) -> Result<String, StoreError> {
        let last: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
            .arg(self.key())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.0.conn())
            .await?;
        Ok(last
            .into_iter()
            .next()
            .map_or_else(|| "0-0".to_string(), |(id, _)| id))
    }

    async fn read_after(&self, cursor: &str) -> Result<(Vec<FeedEvent>, String), StoreError> {
        let reply: StreamReply = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(100)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(self.key())
            .arg(cursor)
            .query_async(&mut self.0.conn())
            .await?;
        let mut next = cursor.to_string();
        let mut events = Vec::new();
        for (_, entries) in reply.unwrap_or_default() {
            for (id, fields) in entries {
                next = id;
                let json = fields
                    .chunks(2)
                    .find(|pair| pair.first().map(String::as_str) == Some("e"))
                    .and_then(|pair| pair.get(1))
                    .ok_or_else(|| corrupt(format!("feed entry {next} has no event")))?;
                events.push(
                    serde_json::from_str(json).map_err(|e| corrupt(format!("feed entry {next}: {e}")))?,
                );
            }
        }
        Ok((events, next))
    }
}
