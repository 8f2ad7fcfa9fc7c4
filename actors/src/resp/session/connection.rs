//! The commands of a RESP session about the connection itself that take
//! more than a line: AUTH, HELLO, CLIENT and INFO.

use actix::prelude::*;
use tracing::{debug, info, warn};

use super::{Pending, RespSession};
use crate::client_api::access::AUTH_FAILURES_MAX;
use crate::failure_detector::StatusQuery;
use crate::resp::command::ClientCommand;
use crate::resp::frame::{Protocol, Reply};
use crate::resp::info::{self, ClientFacts, InfoFacts};
use crate::resp::scan;
use crate::wire::client::{ClientOp, ClientReply};

impl RespSession {
    /// `AUTH`: the client token as the password (username `default` or
    /// none). The token is never logged.
    pub(super) fn authenticate(&mut self, user: Option<&[u8]>, password: &[u8]) -> Reply {
        let span = self.span.clone();
        let _span = span.enter();
        if user.is_some_and(|u| u != b"default") {
            info!("RESP AUTH with a username other than `default`; refused");
            return Reply::Error(
                "WRONGPASS invalid username-password pair or user is disabled.".into(),
            );
        }
        match self.access.authenticate(&self.options.tokens, password) {
            Ok(grant) => {
                debug!(?grant, "RESP client authenticated");
                Reply::ok()
            }
            Err(refused) => {
                warn!(
                    failures = refused.failures,
                    limit = AUTH_FAILURES_MAX,
                    "RESP client sent a wrong token"
                );
                if refused.close {
                    warn!(
                        limit = AUTH_FAILURES_MAX,
                        "closing the RESP connection: too many wrong tokens (AUTH_FAILURES_MAX)"
                    );
                    self.closing = true;
                }
                Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into())
            }
        }
    }

    pub(super) fn on_hello(
        &mut self,
        protover: Option<u8>,
        auth: Option<(Vec<u8>, Vec<u8>)>,
        setname: Option<Vec<u8>>,
        ctx: &mut Context<Self>,
    ) {
        if let Some((user, password)) = auth {
            let reply = self.authenticate(Some(&user), &password);
            if matches!(reply, Reply::Error(_)) {
                return self.answer(reply, ctx);
            }
        }
        if self
            .access
            .permit(&ClientOp::Ping, self.remote.ip())
            .is_err()
        {
            return self.answer(
                Reply::Error(
                    "NOAUTH HELLO must be called with the client already authenticated, \
                     otherwise the HELLO <proto> AUTH <user> <pass> option can be used to \
                     authenticate the client and select the RESP protocol version at the \
                     same time"
                        .into(),
                ),
                ctx,
            );
        }
        match protover {
            Some(3) => self.protocol = Protocol::Resp3,
            Some(_) => self.protocol = Protocol::Resp2,
            None => {}
        }
        if let Some(name) = setname {
            self.name = name;
        }
        let proto = if self.protocol == Protocol::Resp3 {
            3
        } else {
            2
        };
        let reply = Reply::Map(vec![
            (Reply::text("server"), Reply::text("ringkv")),
            (Reply::text("version"), Reply::text(info::REDIS_VERSION)),
            (Reply::text("proto"), Reply::Int(proto)),
            (Reply::text("id"), Reply::Int(self.id as i64)),
            (Reply::text("mode"), Reply::text("standalone")),
            (Reply::text("role"), Reply::text("master")),
            (Reply::text("modules"), Reply::Array(Vec::new())),
            (Reply::text("ringkv_node"), Reply::text(self.node.as_str())),
        ]);
        self.answer(reply, ctx);
    }

    pub(super) fn on_client(&mut self, sub: ClientCommand) -> Reply {
        match sub {
            ClientCommand::SetName(name) => {
                self.name = name;
                Reply::ok()
            }
            ClientCommand::GetName if self.name.is_empty() => Reply::Nil,
            ClientCommand::GetName => Reply::Bulk(self.name.clone()),
            ClientCommand::Id => Reply::Int(self.id as i64),
            ClientCommand::SetInfo(attr, value) => match attr.as_slice() {
                b"lib-name" => {
                    self.lib_name = value;
                    Reply::ok()
                }
                b"lib-ver" => {
                    self.lib_ver = value;
                    Reply::ok()
                }
                _ => Reply::err("Unrecognized option for CLIENT SETINFO"),
            },
            ClientCommand::Info => {
                let consistency = self.consistency.as_str();
                Reply::text(info::client_line(&ClientFacts {
                    id: self.id,
                    addr: self.remote.to_string(),
                    laddr: self
                        .shared
                        .local_addr
                        .map_or_else(String::new, |a| a.to_string()),
                    name: &self.name,
                    resp: if self.protocol == Protocol::Resp3 {
                        3
                    } else {
                        2
                    },
                    lib_name: &self.lib_name,
                    lib_ver: &self.lib_ver,
                    consistency,
                    age_s: self.opened.elapsed().as_secs(),
                }))
            }
        }
    }

    pub(super) fn info(&self, sections: Vec<String>) -> Pending {
        let status = self.failure_detector.send(StatusQuery);
        let sections = info::sections(&sections);
        let walk = sections
            .contains(&"keyspace")
            .then(|| self.walk_keys(scan::DBSIZE_EXACT_KEYS_MAX));
        let key_bytes_max = self.options.limits.max_key_bytes;
        let mut facts = InfoFacts {
            node: self.node.to_string(),
            tcp_port: self.shared.local_addr.map_or(0, |a| a.port()),
            uptime_s: self.shared.started.elapsed().as_secs(),
            connected_clients: self.shared.open.get(),
            n: self.options.replicas,
            ..InfoFacts::default()
        };
        Box::pin(async move {
            if let Ok(ClientReply::Status { members, extra, .. }) = status.await {
                let number = |name: &str| {
                    extra
                        .iter()
                        .find(|(k, _)| k == name)
                        .and_then(|(_, v)| v.as_u64())
                        .map_or(0, |v| v as usize)
                };
                facts.r = number("r");
                facts.w = number("w");
                facts.members = Some(members);
            }
            if let Some(walk) = walk {
                if let Ok((keys, stopped)) = walk.await {
                    facts.keys = Some(scan::dbsize_estimate(
                        keys.len(),
                        stopped.as_deref(),
                        key_bytes_max,
                    ));
                }
            }
            Reply::text(info::render(&facts, &sections))
        })
    }
}
