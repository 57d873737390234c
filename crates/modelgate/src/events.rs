//! Publishing transitions as `events.k8s.io/v1` Events.
//!
//! kube's `Recorder` folds events with the same reason on the same object
//! into one series and keeps the first note, which would turn five different
//! reviewers' decisions into one event naming only the first. An audit
//! trail needs one Event per decision, so each is created on its own.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};

use crate::vocabulary::FIELD_MANAGER;
use crate::vocabulary::Severity;

/// The API server's limit on an Event note.
const NOTE_LIMIT: usize = 1024;

/// Creates Events about objects, as this operator instance.
#[derive(Clone)]
pub struct Publisher {
    client: Client,
    instance: String,
}

impl Publisher {
    pub fn new(client: Client, instance: Option<String>) -> Self {
        let instance = instance.unwrap_or_else(|| FIELD_MANAGER.to_string());
        Publisher { client, instance }
    }

    /// Creates one Event about `regarding`.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        severity: Severity,
        reason: &str,
        action: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let mut note: String = note.to_string();
        if note.len() > NOTE_LIMIT {
            let cut = (0..=NOTE_LIMIT - 3)
                .rev()
                .find(|i| note.is_char_boundary(*i))
                .unwrap_or(0);
            note.truncate(cut);
            note.push('…');
        }
        // Named as client-go names events: the object's name and the time in
        // hex nanoseconds, unique for one object at one instant.
        let object: String = regarding
            .name
            .as_deref()
            .unwrap_or("object")
            .chars()
            .take(230)
            .collect();
        let nanos = jiff::Timestamp::now().as_nanosecond();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{object}.{nanos:x}")),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(jiff::Timestamp::now())),
            type_: Some(severity.as_str().to_string()),
            reason: Some(reason.to_string()),
            action: Some(action.to_string()),
            note: Some(note),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(format!("{}.io/{FIELD_MANAGER}", FIELD_MANAGER)),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        };
        Api::<Event>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await?;
        Ok(())
    }
}
