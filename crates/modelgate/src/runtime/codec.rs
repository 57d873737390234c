//! The packed form of cached objects: JSON deflated against a preset
//! dictionary of typical objects, with one compressor and one decompressor
//! kept per thread.

use std::cell::RefCell;
use std::sync::LazyLock;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use k8s_openapi::api::apps::v1::Deployment;

use crate::api::approval::{ModelApprovalSpec, ModelApprovalStatus};

/// Why a packed object could not be made or read back. Each means a bug or
/// memory corruption, never bad input: the object was read from JSON first.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("cannot serialise the object: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot compress the object: {0}")]
    Deflate(#[from] flate2::CompressError),
    #[error("cannot decompress the object: {0}")]
    Inflate(#[from] flate2::DecompressError),
    /// The stream ended early (a truncated object), or the compressor
    /// stopped before its end.
    #[error("the packed object ends early or its compression stopped")]
    Truncated,
}

impl From<PackError> for crate::error::Error {
    fn from(e: PackError) -> Self {
        crate::error::Error::Unavailable(format!("a cached object cannot be unpacked: {e}"))
    }
}

/// What each thread keeps between packs: a compressor and a decompressor
/// (each a few hundred KB of tables, which made every pack allocate and
/// zero that much when built afresh) and the JSON buffer.
struct Codec {
    compress: Compress,
    decompress: Decompress,
    json: Vec<u8>,
}

thread_local! {
    static CODEC: RefCell<Codec> = RefCell::new(Codec {
        // The default level: with the dictionary it finds the long matches
        // that make a pending status about 40 bytes, where the fastest
        // level leaves about 80.
        compress: Compress::new(Compression::default(), false),
        decompress: Decompress::new(false),
        json: Vec::new(),
    });
}

/// A managed Deployment as the API server returns it, without its
/// metadata (which a packed object keeps apart); an approval's spec and
/// statuses as the operator writes them (one approved, one pending).
const TYPICAL: &str = include_str!("typical-objects.json");

#[derive(serde::Deserialize)]
struct Typical {
    deployment: Deployment,
    approval: TypicalApproval,
}

#[derive(serde::Deserialize)]
struct TypicalApproval {
    spec: ModelApprovalSpec,
    statuses: Vec<ModelApprovalStatus>,
}

/// The preset dictionary of every pack: the typical objects as this
/// operator serialises them. Statuses repeat their keys, gate names and
/// messages, so most of a status is found in it: a pending one deflates
/// to about 40 bytes instead of 540. Packs never leave the process, so the
/// dictionary may change with any release. The pending status, the most
/// common, comes last: the end of a dictionary is the cheapest to refer to.
static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let typical: Typical = match serde_json::from_str(TYPICAL) {
        Ok(typical) => typical,
        Err(e) => {
            // Only a broken build gets here; packing still works, larger.
            tracing::error!(error = %e, "the typical objects do not read; packing without a dictionary");
            return Vec::new();
        }
    };
    let approval = &typical.approval;
    let deployment = serde_json::to_vec(&typical.deployment).ok();
    let spec = serde_json::to_vec(&approval.spec).ok();
    let statuses = approval.statuses.iter().map(|s| serde_json::to_vec(s).ok());
    [deployment, spec]
        .into_iter()
        .chain(statuses)
        .flatten()
        .flatten()
        .collect()
});

/// A JSON buffer larger than this is not kept for the next pack, so that
/// one huge status does not pin its size in every thread.
const KEPT_BUFFER: usize = 64 * 1024;

/// `value` as JSON, deflated.
pub fn deflate(value: &impl serde::Serialize) -> Result<Box<[u8]>, PackError> {
    CODEC.with_borrow_mut(|codec| {
        codec.json.clear();
        serde_json::to_writer(&mut codec.json, value)?;
        codec.compress.reset();
        codec.compress.set_dictionary(&DICTIONARY)?;
        let mut out = Vec::with_capacity(codec.json.len() / 3 + 64);
        let result = loop {
            let read = usize::try_from(codec.compress.total_in()).unwrap_or(usize::MAX);
            let rest = codec.json.get(read..).unwrap_or_default();
            match codec
                .compress
                .compress_vec(rest, &mut out, FlushCompress::Finish)
            {
                Ok(Status::StreamEnd) => break Ok(out.into_boxed_slice()),
                // Stopped with room to spare: it would never end.
                Ok(Status::Ok | Status::BufError) if out.len() < out.capacity() => {
                    break Err(PackError::Truncated);
                }
                // The output is full: give it room and go on.
                Ok(Status::Ok | Status::BufError) => out.reserve(out.capacity().max(64)),
                Err(e) => break Err(e.into()),
            }
        };
        keep_small(&mut codec.json);
        result
    })
}

/// The value deflated by [`deflate`].
pub fn inflate<T: serde::de::DeserializeOwned>(deflated: &[u8]) -> Result<T, PackError> {
    CODEC.with_borrow_mut(|codec| {
        codec.json.clear();
        codec.decompress.reset(false);
        codec.decompress.set_dictionary(&DICTIONARY)?;
        codec.json.reserve(deflated.len() * 4);
        let result = loop {
            let read = usize::try_from(codec.decompress.total_in()).unwrap_or(usize::MAX);
            let rest = deflated.get(read..).unwrap_or_default();
            match codec
                .decompress
                .decompress_vec(rest, &mut codec.json, FlushDecompress::Finish)
            {
                Ok(Status::StreamEnd) => {
                    break serde_json::from_slice(&codec.json).map_err(Into::into);
                }
                // More output than room: give it room, unless the input is
                // used up without an end (a truncated stream).
                Ok(Status::Ok | Status::BufError) if codec.json.len() < codec.json.capacity() => {
                    break Err(PackError::Truncated);
                }
                Ok(Status::Ok | Status::BufError) => {
                    codec.json.reserve(codec.json.capacity().max(256));
                }
                Err(e) => break Err(e.into()),
            }
        };
        keep_small(&mut codec.json);
        result
    })
}

fn keep_small(buffer: &mut Vec<u8>) {
    if buffer.capacity() > KEPT_BUFFER {
        *buffer = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_holds_every_typical_object() {
        let typical: Typical =
            serde_json::from_str(TYPICAL).unwrap_or_else(|e| panic!("the typical objects: {e}"));
        let deployment = serde_json::to_vec(&typical.deployment).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            DICTIONARY.starts_with(&deployment),
            "the Deployment comes first"
        );
        assert!(
            typical.deployment.metadata.name.is_none(),
            "packed objects keep their metadata apart"
        );
        assert_eq!(
            typical.approval.statuses.len(),
            2,
            "one approved, one pending"
        );
        assert!(
            DICTIONARY.len() > deployment.len() + 6000,
            "{} bytes",
            DICTIONARY.len()
        );
        // Deflate looks back 32 KB at most: all of it must stay in reach.
        assert!(DICTIONARY.len() <= 32 * 1024, "{} bytes", DICTIONARY.len());
    }

    #[test]
    fn empty_input_is_an_error_on_a_fresh_thread_too() {
        // A new thread's buffer has no room yet: the loop must still end.
        let result = std::thread::spawn(|| inflate::<serde_json::Value>(&[]))
            .join()
            .unwrap_or_else(|_| panic!("the thread panicked"));
        assert!(matches!(result, Err(PackError::Truncated)), "{result:?}");
    }

    #[test]
    fn a_value_packs_and_unpacks() {
        let value = serde_json::json!({"a": [1, 2, 3], "b": "text"});
        let packed = deflate(&value).unwrap_or_else(|e| panic!("packs: {e}"));
        let back: serde_json::Value = inflate(&packed).unwrap_or_else(|e| panic!("unpacks: {e}"));
        assert_eq!(back, value);
        assert!(matches!(
            inflate::<serde_json::Value>(&packed[..packed.len() / 2]),
            Err(PackError::Truncated)
        ));
    }
}
