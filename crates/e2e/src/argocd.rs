//! The shipped Argo CD health checks, run with a Lua 5.1 interpreter as
//! Argo CD runs them.

use mlua::serde::SerializeOptions;
use mlua::{Lua, LuaSerdeExt};
use serde_json::Value;

/// The Lua script of one kind, from the shipped argocd-cm snippet.
pub fn script(kind: &str) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/argocd/argocd-cm-health.yaml"
    ))
    .expect("snippet");
    let doc: Value = serde_yaml_ng::from_str(&text).expect("snippet yaml");
    doc["data"][format!("resource.customizations.health.modelgate.io_{kind}")]
        .as_str()
        .expect("script")
        .to_string()
}

/// Runs a health script on `obj`: (status, message).
pub fn health(kind: &str, obj: &Value) -> (String, String) {
    let lua = Lua::new();
    let options = SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false);
    let value = lua.to_value_with(obj, options).expect("object to lua");
    lua.globals().set("obj", value).expect("set obj");
    let result: mlua::Table = lua.load(script(kind)).eval().expect("script runs");
    (
        result.get("status").unwrap_or_default(),
        result.get("message").unwrap_or_default(),
    )
}
