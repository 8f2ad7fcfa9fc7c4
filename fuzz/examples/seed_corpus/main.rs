//! Writes the seed corpora of the fuzz targets, `fuzz/corpus/<target>/`,
//! from real frames and files: requests and responses as the client and
//! the node encode them, peer frames, objects and contexts minted by the
//! versioning rules, gossip lists from a gossip node, and the tables, log
//! segments and manifests an `LsmEngine` writes (over the in-memory
//! `FaultVfs`, which hands their bytes back).
//!
//! ```sh
//! cd fuzz && cargo run --example seed_corpus
//! ```
//!
//! Deterministic: fixed keys, values and times, so running it again gives
//! the same files. Each target's folder is emptied first.

use std::error::Error;
use std::path::{Path, PathBuf};

use ringkv_actors::wire::peer::MemberInfo;
use ringkv_actors::NodeId;

mod frames;
mod store;

use frames::{client_frames, gossip_messages, objects, peer_frames, versioning};
use store::{commit_log, hints_and_gossip, manifests, sstables, store_files};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let objects = objects()?;
    let gossip = gossip_messages()?;
    let store = store_files()?;
    let mut corpus = Corpus::new(root);
    client_frames(&mut corpus.target("client_frames")?)?;
    peer_frames(&mut corpus.target("peer_frames")?, &objects, &gossip)?;
    versioning(&mut corpus.target("versioning")?, &objects)?;
    sstables(&mut corpus, &store)?;
    commit_log(&mut corpus.target("commit_log")?, &store)?;
    manifests(&mut corpus.target("manifest")?, &store)?;
    hints_and_gossip(&mut corpus.target("hints_and_gossip")?, &gossip)?;
    println!("wrote {} files, {} bytes", corpus.files, corpus.bytes);
    Ok(())
}

/// The corpus folders and a count of what went in.
struct Corpus {
    root: PathBuf,
    files: usize,
    bytes: usize,
}

/// One target's folder.
struct Target<'a> {
    corpus: &'a mut Corpus,
    dir: PathBuf,
}

impl Corpus {
    fn new(root: PathBuf) -> Self {
        Self {
            root,
            files: 0,
            bytes: 0,
        }
    }

    fn target(&mut self, name: &str) -> Result<Target<'_>> {
        let dir = self.root.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(Target { corpus: self, dir })
    }
}

impl Target<'_> {
    fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        std::fs::write(self.dir.join(name), bytes)?;
        self.corpus.files += 1;
        self.corpus.bytes += bytes.len();
        Ok(())
    }

    /// Writes `bytes` behind a mode byte (see each target's doc).
    fn write_mode(&mut self, name: &str, mode: u8, bytes: &[u8]) -> Result<()> {
        self.write(
            &format!("{name}-mode{mode}"),
            &[&[mode][..], bytes].concat(),
        )
    }
}

fn node(id: &str) -> Result<NodeId> {
    Ok(NodeId::new(id)?)
}

fn member(id: &str, port: u16) -> Result<MemberInfo> {
    Ok(MemberInfo {
        id: node(id)?,
        peer_addr: format!("127.0.0.1:{}", 7100 + port),
        client_addr: format!("127.0.0.1:{}", 7000 + port),
        dc: "dc1".into(),
        rack: format!("r{port}"),
        weight: 1,
    })
}
