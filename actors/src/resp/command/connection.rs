//! Parsing the connection commands' arguments: `HELLO`, `COMMAND` and
//! `CLIENT`.

use super::{ClientCommand, Command, CommandQuery};
use crate::resp::frame::Reply;

pub(super) fn parse_hello(rest: &[Vec<u8>]) -> Result<Command, Reply> {
    let mut protover = None;
    let mut auth = None;
    let mut setname = None;
    let mut at = 0;
    if let Some(first) = rest.first() {
        protover = match first.as_slice() {
            b"2" => Some(2),
            b"3" => Some(3),
            _ => return Err(Reply::Error("NOPROTO unsupported protocol version".into())),
        };
        at = 1;
    }
    while at < rest.len() {
        match rest[at].to_ascii_lowercase().as_slice() {
            b"auth" if at + 2 < rest.len() => {
                auth = Some((rest[at + 1].clone(), rest[at + 2].clone()));
                at += 3;
            }
            b"setname" if at + 1 < rest.len() => {
                setname = Some(rest[at + 1].clone());
                at += 2;
            }
            _ => {
                return Err(Reply::err(format!(
                    "syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&rest[at])
                )))
            }
        }
    }
    Ok(Command::Hello {
        protover,
        auth,
        setname,
    })
}

pub(super) fn parse_command(rest: &[Vec<u8>]) -> Result<Command, Reply> {
    let Some(sub) = rest.first() else {
        return Ok(Command::Command(CommandQuery::All));
    };
    let names = || rest[1..].to_vec();
    match sub.to_ascii_lowercase().as_slice() {
        b"count" => Ok(Command::Command(CommandQuery::Count)),
        b"info" => Ok(Command::Command(CommandQuery::Info(names()))),
        b"docs" => Ok(Command::Command(CommandQuery::Docs(names()))),
        _ => Err(Reply::err(format!(
            "unknown subcommand '{}'. Try COMMAND COUNT, COMMAND INFO, COMMAND DOCS",
            String::from_utf8_lossy(sub)
        ))),
    }
}

pub(super) fn parse_client(rest: &[Vec<u8>]) -> Result<Command, Reply> {
    let Some(sub) = rest.first() else {
        return Err(Reply::err("wrong number of arguments for 'client' command"));
    };
    let sub = sub.to_ascii_lowercase();
    let arity = |ok: bool, name: &str| {
        if ok {
            Ok(())
        } else {
            Err(Reply::err(format!(
                "wrong number of arguments for 'client|{name}' command"
            )))
        }
    };
    match sub.as_slice() {
        b"setname" => {
            arity(rest.len() == 2, "setname")?;
            if rest[1].iter().any(|b| *b <= b' ' || *b > b'~') {
                return Err(Reply::err(
                    "Client names cannot contain spaces, newlines or special characters.",
                ));
            }
            Ok(Command::Client(ClientCommand::SetName(rest[1].clone())))
        }
        b"getname" => Ok(Command::Client(ClientCommand::GetName)),
        b"id" => Ok(Command::Client(ClientCommand::Id)),
        b"info" => Ok(Command::Client(ClientCommand::Info)),
        b"setinfo" => {
            arity(rest.len() == 3, "setinfo")?;
            Ok(Command::Client(ClientCommand::SetInfo(
                rest[1].to_ascii_lowercase(),
                rest[2].clone(),
            )))
        }
        _ => Err(Reply::err(format!(
            "CLIENT {} is not supported; ringkv answers CLIENT SETNAME, GETNAME, ID, INFO, SETINFO",
            String::from_utf8_lossy(&sub).to_ascii_uppercase()
        ))),
    }
}
