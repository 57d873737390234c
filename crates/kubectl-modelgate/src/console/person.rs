//! The person a request acts as. Run locally, that is always the caller of
//! `kubectl modelgate console`; in the cluster, it is whoever the request's
//! session cookie names, and a request that names no live session is sent
//! to sign in before any handler runs, so it reads and writes nothing.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response;

use super::return_to::sign_in_again;
use super::sessions::{Ended, Lookup};
use super::views::Me;
use super::{Console, People};
use crate::Session;

/// A person: the client that acts as them and who the cluster says they are.
#[derive(Clone)]
pub struct Person {
    pub session: Arc<Session>,
    pub me: Arc<Me>,
    /// When a signed-in session ends (None: the local console's caller).
    pub ends: Option<jiff::Timestamp>,
    /// Resolves when the session leaves the console's store (signed out or
    /// replaced): its live pages close then.
    pub ended: Ended,
}

impl Person {
    pub fn new(session: Session, me: Me, ends: Option<jiff::Timestamp>, ended: Ended) -> Person {
        Person {
            session: Arc::new(session),
            me: Arc::new(me),
            ends,
            ended,
        }
    }
}

impl FromRequestParts<Console> for Person {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, c: &Console) -> Result<Person, Response> {
        match &c.people {
            People::Local(person) => Ok(person.clone()),
            People::SignedIn(sign_in) => match sign_in.person(&parts.headers) {
                Lookup::Live(person) => Ok(person),
                Lookup::Ended => Err(sign_in_again(parts, true)),
                Lookup::Unknown => Err(sign_in_again(parts, false)),
            },
        }
    }
}
