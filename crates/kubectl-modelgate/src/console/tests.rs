//! The console's routes in-process, with no cluster and no network: the
//! router as `serve` runs it, asked with `oneshot`, and a stand-in API
//! server behind each person's client (`fake`). What a person or another
//! site would send, and what comes back: the Host and Origin guard and the
//! local console's key (`local`), sessions, their limits and the live
//! pages that end with them (`signed_in`).

mod fake;
mod local;
mod signed_in;
