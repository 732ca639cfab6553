//! The strict reader over option shapes like the store's own.

use serde::Deserialize;

use super::*;

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Top {
  dir: Option<String>,
  keep: Option<Vec<String>>,
  max_entries: Option<f64>,
  redis: Option<Redis>,
  on_error: Option<Callback>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Redis {
  url: Option<String>,
  ttl_seconds: Option<f64>,
  tls: Option<Tls>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Tls {
  ca_file: String,
  insecure: Option<bool>,
}

fn obj(entries: Vec<(&str, Given)>) -> Given {
  Given::Object(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn refused(given: Given, root: &str) -> String {
  match read::<Top>(given, root) {
    Err(StoreError::Options(message)) => message,
    other => panic!("not refused: {other:?}"),
  }
}

#[test]
fn a_well_formed_object_reads_with_undefined_and_null_as_absent() {
  let given = obj(vec![
    ("dir", Given::String("x".into())),
    ("keep", Given::Array(vec![Given::String("a".into())])),
    ("maxEntries", Given::Undefined),
    ("redis", obj(vec![("url", Given::Null), ("tls", obj(vec![("caFile", Given::String("ca".into()))]))])),
    ("onError", Given::Function(3)),
  ]);
  let top: Top = read(given, "").unwrap();
  assert_eq!(top.dir.as_deref(), Some("x"));
  assert_eq!(top.max_entries, None);
  assert_eq!(top.on_error, Some(Callback(3)));
  assert_eq!(top.redis.unwrap().tls.unwrap(), Tls { ca_file: "ca".into(), insecure: None });
}

#[test]
fn unknown_keys_name_themselves_and_the_nearest_valid_one_at_every_level() {
  assert_eq!(refused(obj(vec![("dirr", Given::String("x".into()))]), ""), "unknown option `dirr`; did you mean `dir`?");
  let ttl = obj(vec![("redis", obj(vec![("ttl", Given::Number(5.0))]))]);
  assert_eq!(refused(ttl, ""), "unknown option `redis.ttl`; did you mean `redis.ttlSeconds`?");
  let tls = obj(vec![("redis", obj(vec![("tls", obj(vec![("cafile", Given::String("c".into()))]))]))]);
  assert_eq!(refused(tls, ""), "unknown option `redis.tls.cafile`; did you mean `redis.tls.caFile`?");
  let far = refused(obj(vec![("zzzzqqq", Given::Null)]), "fleet");
  assert!(far.starts_with("unknown option `fleet.zzzzqqq`; valid here: dir, keep"), "{far}");
}

#[test]
fn wrong_types_speak_javascript_and_never_echo_strings() {
  assert_eq!(refused(obj(vec![("dir", Given::Number(42.0))]), ""), "dir must be a string, got number 42");
  let keep = obj(vec![("keep", Given::Array(vec![Given::String("a".into()), Given::Bool(true)]))]);
  assert_eq!(refused(keep, ""), "keep[1] must be a string, got boolean true");
  assert_eq!(refused(obj(vec![("keep", Given::String("a".into()))]), ""), "keep must be an array, got a string");
  let secret = refused(obj(vec![("maxEntries", Given::String("hunter2".into()))]), "");
  assert_eq!(secret, "maxEntries must be a number, got a string");
  assert_eq!(refused(obj(vec![("redis", Given::Number(1.5))]), ""), "redis must be an object, got number 1.5");
  assert_eq!(refused(obj(vec![("onError", Given::Bool(false))]), ""), "onError must be a function, got boolean false");
  assert_eq!(refused(obj(vec![("dir", Given::Function(0))]), ""), "dir must be a string, got a function");
  assert_eq!(refused(Given::Number(f64::INFINITY), ""), "options must be an object, got number Infinity");
  assert_eq!(refused(Given::Array(vec![]), "fleet"), "fleet must be an object, got an array");
}

#[test]
fn a_missing_required_key_is_named_with_its_path() {
  let tls = obj(vec![("redis", obj(vec![("tls", obj(vec![("insecure", Given::Bool(true))]))]))]);
  assert_eq!(refused(tls, ""), "redis.tls.caFile is required");
  let undefined = obj(vec![("redis", obj(vec![("tls", obj(vec![("caFile", Given::Undefined)]))]))]);
  assert_eq!(refused(undefined, ""), "redis.tls.caFile must be a string, got undefined");
}

#[test]
fn option_errors_are_coded_invalid_option() {
  let err = read::<Top>(obj(vec![("dirr", Given::Null)]), "").unwrap_err();
  assert_eq!(err.code(), "ERR_INVALID_OPTION");
  assert_eq!(err.to_string(), "unknown option `dirr`; did you mean `dir`?");
}
