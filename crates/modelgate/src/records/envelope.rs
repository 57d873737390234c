//! Signing and checking DSSE envelopes with Ed25519.
//!
//! The signature is over DSSE's pre-authentication encoding (PAE) of the
//! payload type and the payload bytes, as the DSSE specification defines it,
//! so any DSSE verifier checks our records. The cryptography is
//! `ed25519-dalek`'s; keys travel as PKCS#8 / SPKI PEM, which openssl reads.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer as _, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::api::record::{Envelope, Signature};

/// The payload type of an in-toto Statement in DSSE.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Why a key could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no randomness for a new key: {0}")]
    Random(String),
    #[error("the signing key is not an Ed25519 PKCS#8 PEM private key: {0}")]
    Private(String),
    #[error("not an Ed25519 public key in PEM: {0}")]
    Public(String),
}

/// Why an envelope does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the payload is not base64")]
    Payload,
    #[error("the envelope has no signature")]
    Unsigned,
    #[error("signed with key {0}, which is not among the public keys given")]
    UnknownKey(String),
    #[error(
        "the signature does not verify with key {0}: the record was changed or signed by someone else"
    )]
    Invalid(String),
}

/// DSSE's pre-authentication encoding:
/// `DSSEv1 SP LEN(type) SP type SP LEN(body) SP body`, lengths in decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A key's id: SHA-256 (hex) of its public key in DER (SubjectPublicKeyInfo).
pub fn key_id(key: &VerifyingKey) -> String {
    match key.to_public_key_der() {
        Ok(der) => hex::encode(Sha256::digest(der.as_bytes())),
        Err(_) => hex::encode(Sha256::digest(key.as_bytes())),
    }
}

/// The operator's signing key.
pub struct Signer {
    key: SigningKey,
    id: String,
}

impl Signer {
    /// A new key from the operating system's randomness.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_key(SigningKey::from_bytes(&seed)))
    }

    /// A key from its PKCS#8 PEM form (as kept in the Secret).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError::Private(e.to_string()))?;
        Ok(Self::from_key(key))
    }

    fn from_key(key: SigningKey) -> Self {
        let id = key_id(&key.verifying_key());
        Signer { key, id }
    }

    /// The private key as PKCS#8 PEM, for the Secret.
    pub fn private_pem(&self) -> Result<String, KeyError> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|e| KeyError::Private(e.to_string()))
    }

    /// The public key as SPKI PEM, for everyone.
    pub fn public_pem(&self) -> Result<String, KeyError> {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| KeyError::Public(e.to_string()))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The public half, to check what this key signed.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// `payload` (an in-toto Statement) in a DSSE envelope with this key's
    /// signature.
    pub fn seal(&self, payload: &[u8]) -> Envelope {
        self.seal_as(PAYLOAD_TYPE, payload)
    }

    /// `payload` of `payload_type` in a DSSE envelope with this key's
    /// signature. The type is signed too (DSSE's PAE), so a payload of one
    /// type is never taken for another.
    pub fn seal_as(&self, payload_type: &str, payload: &[u8]) -> Envelope {
        let signature = self.key.sign(&pae(payload_type, payload));
        Envelope {
            payload_type: payload_type.to_string(),
            payload: STANDARD.encode(payload),
            signatures: vec![Signature {
                keyid: self.id.clone(),
                sig: STANDARD.encode(signature.to_bytes()),
            }],
        }
    }
}

/// A public key records are verified with (Ed25519).
pub type PublicKey = VerifyingKey;

/// Every public key in a PEM text (one or more PUBLIC KEY blocks).
pub fn public_keys(pem: &str) -> Result<Vec<VerifyingKey>, KeyError> {
    const END: &str = "-----END PUBLIC KEY-----";
    let keys: Vec<VerifyingKey> = pem
        .split_inclusive(END)
        .filter(|block| block.contains(END))
        .map(|block| {
            VerifyingKey::from_public_key_pem(block.trim())
                .map_err(|e| KeyError::Public(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Err(KeyError::Public("no PUBLIC KEY block".into()));
    }
    Ok(keys)
}

/// The envelope's payload once one of its signatures verifies with one of
/// `keys`.
pub fn open(envelope: &Envelope, keys: &[VerifyingKey]) -> Result<Vec<u8>, SignatureError> {
    let payload = STANDARD
        .decode(&envelope.payload)
        .map_err(|_| SignatureError::Payload)?;
    let message = pae(&envelope.payload_type, &payload);
    let mut last = SignatureError::Unsigned;
    for signature in &envelope.signatures {
        let Some(key) = keys.iter().find(|k| key_id(k) == signature.keyid) else {
            last = SignatureError::UnknownKey(signature.keyid.clone());
            continue;
        };
        let verified = STANDARD
            .decode(&signature.sig)
            .ok()
            .and_then(|bytes| ed25519_dalek::Signature::from_slice(&bytes).ok())
            .is_some_and(|sig| key.verify(&message, &sig).is_ok());
        if verified {
            return Ok(payload);
        }
        last = SignatureError::Invalid(signature.keyid.clone());
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_the_dsse_encoding() {
        // The DSSE specification's own example.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn a_sealed_payload_opens_with_its_key_only() {
        let signer = Signer::generate().expect("key");
        let other = Signer::generate().expect("key");
        let envelope = signer.seal(b"{\"a\":1}");
        let mine = public_keys(&signer.public_pem().expect("pem")).expect("keys");
        let theirs = public_keys(&other.public_pem().expect("pem")).expect("keys");
        assert_eq!(open(&envelope, &mine).as_deref(), Ok(&b"{\"a\":1}"[..]));
        assert_eq!(
            open(&envelope, &theirs),
            Err(SignatureError::UnknownKey(signer.id().to_string()))
        );

        let mut changed = envelope.clone();
        changed.payload = STANDARD.encode(b"{\"a\":2}");
        assert_eq!(
            open(&changed, &mine),
            Err(SignatureError::Invalid(signer.id().to_string()))
        );
    }

    #[test]
    fn keys_survive_their_pem_forms() {
        let signer = Signer::generate().expect("key");
        let again = Signer::from_pem(&signer.private_pem().expect("pem")).expect("read");
        assert_eq!(again.id(), signer.id());
        let both = format!(
            "{}{}",
            signer.public_pem().expect("pem"),
            Signer::generate().expect("key").public_pem().expect("pem")
        );
        assert_eq!(public_keys(&both).expect("two keys").len(), 2);
        assert!(Signer::from_pem("not a key").is_err());
    }
}
