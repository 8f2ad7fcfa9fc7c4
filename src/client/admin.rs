//! The admin ops of the client: `status`, `leave`, `forget`, and the raw
//! answers of the ringkv extensions (`members`, `ring`, `repair`).

use ringkv_actors::wire::client::{map_field, map_str, ClientOp};
use rmpv::Value;

use super::{Client, Error, Member, Status};

impl Client {
    /// Asks the node to hand its ranges off and leave the cluster (an admin
    /// extension; answers once it has started: watch `status`).
    pub async fn leave(&self) -> Result<String, Error> {
        let body = self.call(ClientOp::Leave, None).await?;
        map_str(&body, "node").ok_or_else(|| Error::Protocol("leave answer has no `node`".into()))
    }

    /// Admin: removes `node`, a member that is down for good, from the
    /// cluster; its ranges are re-replicated from the other replicas.
    pub async fn forget(&self, node: &str) -> Result<String, Error> {
        let body = self
            .call(
                ClientOp::Forget {
                    node: node.to_owned(),
                },
                None,
            )
            .await?;
        map_str(&body, "node").ok_or_else(|| Error::Protocol("forget answer has no `node`".into()))
    }

    /// Admin (ringkv extensions `members`, `ring`, `repair`): the answer's
    /// raw map, keys as docs/protocol.md lists them.
    pub async fn admin(&self, op: ClientOp) -> Result<Value, Error> {
        self.call(op, None).await
    }

    /// Membership as the node sees it.
    pub async fn status(&self) -> Result<Status, Error> {
        let body = self.call(ClientOp::Status, None).await?;
        let node =
            map_str(&body, "node").ok_or_else(|| Error::Protocol("status has no `node`".into()))?;
        let members = match map_field(&body, "members") {
            Some(Value::Array(items)) => {
                items.iter().map(member_of).collect::<Result<Vec<_>, _>>()?
            }
            _ => return Err(Error::Protocol("status has no `members` array".into())),
        };
        Ok(Status {
            node,
            members,
            raw: body,
        })
    }
}

fn member_of(v: &Value) -> Result<Member, Error> {
    let need =
        |k: &str| map_str(v, k).ok_or_else(|| Error::Protocol(format!("member has no `{k}`")));
    Ok(Member {
        id: need("id")?,
        addr: need("addr")?,
        client_addr: map_str(v, "client_addr"),
        dc: need("dc")?,
        rack: map_str(v, "rack"),
        state: need("state")?,
        ring_share: map_field(v, "ring_share").and_then(Value::as_f64),
        heartbeat_age_ms: map_field(v, "heartbeat_age_ms").and_then(Value::as_u64),
    })
}
