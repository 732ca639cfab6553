//! Option objects as users write them, read strictly: an unknown key is refused with the nearest valid one, and a
//! value of the wrong type is named in JavaScript terms ("dir must be a string, got number 42"). The typed structs
//! (the binding's `#[napi(object)]` ones, which also generate index.d.ts) derive `Deserialize` with
//! `deny_unknown_fields`; this module is the serde `Deserializer` they are read through, over a plain tree of what
//! JS gave (`Given`), so serde's own structured calls (`unknown_field`, `invalid_type`, `missing_field`) become
//! our messages. No napi types here: the binding builds the tree.

use std::fmt;

use serde::de::{
  self, DeserializeOwned, DeserializeSeed, Expected, IntoDeserializer, MapAccess, SeqAccess, Unexpected,
};
use serde::de::{Deserializer, Visitor};

use crate::error::StoreError;

/// A JS value, as far as options can hold one. Functions stay in the binding; the tree holds their index.
#[derive(Debug, Clone, PartialEq)]
pub enum Given {
  Undefined,
  Null,
  Bool(bool),
  Number(f64),
  String(String),
  Array(Vec<Given>),
  /// Own enumerable string keys, in order.
  Object(Vec<(String, Given)>),
  /// The binding's index of the function.
  Function(usize),
  /// Anything else (a symbol, a bigint, an object nested too deep), described for messages.
  Other(&'static str),
}

/// A callback option (`onError`, `onStart`, …): the index of the function in the binding's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Callback(pub usize);

/// The newtype name `Given` recognises as "a function here".
const CALLBACK: &str = "$wwebjs_rust_store::Callback";

impl<'de> serde::Deserialize<'de> for Callback {
  fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
    struct Function;
    impl Visitor<'_> for Function {
      type Value = Callback;
      fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a function")
      }
      fn visit_u64<E: de::Error>(self, index: u64) -> Result<Callback, E> {
        Ok(Callback(index as usize))
      }
    }
    deserializer.deserialize_newtype_struct(CALLBACK, Function)
  }
}

/// Reads `T` from what JS gave; errors name the option by its path under `root` (`"fleet"` → `fleet.capacity`;
/// `""` for the constructor's options, whose keys are named bare).
pub fn read<T: DeserializeOwned>(given: Given, root: &str) -> Result<T, StoreError> {
  T::deserialize(given).map_err(|e| StoreError::Options(e.message(root)))
}

/// Why an option object was refused, and where.
#[derive(Debug)]
pub struct OptionError {
  /// Innermost last: `["redis", "tls", "caFile"]`, `["keep", "[2]"]`.
  path: Vec<String>,
  problem: Problem,
}

#[derive(Debug)]
enum Problem {
  Unknown { key: String, valid: &'static [&'static str] },
  Type { want: String, got: String },
  Missing(&'static str),
  Other(String),
}

impl OptionError {
  fn new(problem: Problem) -> Self {
    Self { path: Vec::new(), problem }
  }

  fn at(mut self, segment: String) -> Self {
    self.path.insert(0, segment);
    self
  }

  fn message(&self, root: &str) -> String {
    let name = |last: Option<&str>| {
      let mut out = root.to_owned();
      for segment in self.path.iter().map(String::as_str).chain(last) {
        if !out.is_empty() && !segment.starts_with('[') {
          out.push('.');
        }
        out.push_str(segment);
      }
      out
    };
    match &self.problem {
      Problem::Unknown { key, valid } => {
        let full = name(Some(key));
        match nearest(key, valid) {
          Some(near) => format!("unknown option `{full}`; did you mean `{}`?", name(Some(near))),
          None if valid.is_empty() => format!("unknown option `{full}`"),
          None => format!("unknown option `{full}`; valid here: {}", valid.join(", ")),
        }
      }
      Problem::Type { want, got } => {
        let full = name(None);
        format!("{} must be {want}, got {got}", if full.is_empty() { "options" } else { &full })
      }
      Problem::Missing(field) => format!("{} is required", name(Some(field))),
      Problem::Other(reason) => match name(None) {
        full if full.is_empty() => reason.clone(),
        full => format!("{full}: {reason}"),
      },
    }
  }
}

/// The valid key most like `key` (a typo, a wrong case, a missing unit suffix), if any is close.
fn nearest(key: &str, valid: &[&'static str]) -> Option<&'static str> {
  let lower = key.to_lowercase();
  let score = |v: &str| strsim::jaro_winkler(&lower, &v.to_lowercase());
  let best = valid.iter().copied().max_by(|a, b| score(a).total_cmp(&score(b)))?;
  (score(best) >= 0.75).then_some(best)
}

impl fmt::Display for OptionError {
  fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
    f.write_str(&self.message(""))
  }
}

impl std::error::Error for OptionError {}

/// serde names what a visitor wants in Rust terms; options speak JavaScript.
fn want(expected: &dyn Expected) -> String {
  let rust = expected.to_string();
  match rust.as_str() {
    "f64" | "f32" | "u32" | "u64" | "i32" | "i64" => "a number".into(),
    "a sequence" => "an array".into(),
    "option" => "a value".into(),
    s if s.starts_with("struct ") => "an object".into(),
    _ => rust,
  }
}

/// Strings are not echoed: a secret given in the wrong place must not land in a log.
fn got(unexpected: &Unexpected) -> String {
  match unexpected {
    Unexpected::Bool(b) => format!("boolean {b}"),
    Unexpected::Float(n) => format!("number {}", js_number(*n)),
    Unexpected::Unsigned(n) => format!("number {n}"),
    Unexpected::Signed(n) => format!("number {n}"),
    Unexpected::Str(_) | Unexpected::Char(_) => "a string".into(),
    Unexpected::Seq => "an array".into(),
    Unexpected::Map => "an object".into(),
    Unexpected::Unit => "null".into(),
    Unexpected::Other(what) => (*what).into(),
    other => other.to_string(),
  }
}

fn js_number(n: f64) -> String {
  if n.is_infinite() {
    (if n > 0.0 { "Infinity" } else { "-Infinity" }).into()
  } else {
    n.to_string()
  }
}

impl de::Error for OptionError {
  fn custom<T: fmt::Display>(msg: T) -> Self {
    Self::new(Problem::Other(msg.to_string()))
  }
  fn invalid_type(unexpected: Unexpected, expected: &dyn Expected) -> Self {
    Self::new(Problem::Type { want: want(expected), got: got(&unexpected) })
  }
  fn invalid_value(unexpected: Unexpected, expected: &dyn Expected) -> Self {
    Self::invalid_type(unexpected, expected)
  }
  fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
    Self::new(Problem::Unknown { key: field.to_owned(), valid: expected })
  }
  fn missing_field(field: &'static str) -> Self {
    Self::new(Problem::Missing(field))
  }
}

impl Given {
  fn unexpected(&self) -> Unexpected<'_> {
    match self {
      Given::Undefined => Unexpected::Other("undefined"),
      Given::Null => Unexpected::Unit,
      Given::Bool(b) => Unexpected::Bool(*b),
      Given::Number(n) => Unexpected::Float(*n),
      Given::String(s) => Unexpected::Str(s),
      Given::Array(_) => Unexpected::Seq,
      Given::Object(_) => Unexpected::Map,
      Given::Function(_) => Unexpected::Other("a function"),
      Given::Other(what) => Unexpected::Other(what),
    }
  }
}

impl<'de> Deserializer<'de> for Given {
  type Error = OptionError;

  fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, OptionError> {
    match self {
      Given::Bool(b) => visitor.visit_bool(b),
      Given::Number(n) => visitor.visit_f64(n),
      Given::String(s) => visitor.visit_string(s),
      Given::Array(items) => visitor.visit_seq(Items { items: items.into_iter().enumerate() }),
      Given::Object(entries) => visitor.visit_map(Entries { entries: entries.into_iter(), value: None }),
      other => Err(de::Error::invalid_type(other.unexpected(), &visitor)),
    }
  }

  /// `undefined` and `null` both mean "not given", as JS callers expect of an optional field.
  fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, OptionError> {
    match self {
      Given::Undefined | Given::Null => visitor.visit_none(),
      other => visitor.visit_some(other),
    }
  }

  fn deserialize_newtype_struct<V: Visitor<'de>>(
    self,
    name: &'static str,
    visitor: V,
  ) -> Result<V::Value, OptionError> {
    match (name, self) {
      (CALLBACK, Given::Function(index)) => visitor.visit_u64(index as u64),
      (CALLBACK, other) => Err(de::Error::invalid_type(other.unexpected(), &visitor)),
      (_, other) => visitor.visit_newtype_struct(other),
    }
  }

  /// An object only: serde would also take an array for a struct, by position.
  fn deserialize_struct<V: Visitor<'de>>(
    self,
    _name: &'static str,
    _fields: &'static [&'static str],
    visitor: V,
  ) -> Result<V::Value, OptionError> {
    match self {
      object @ Given::Object(_) => object.deserialize_any(visitor),
      other => Err(de::Error::invalid_type(other.unexpected(), &visitor)),
    }
  }

  serde::forward_to_deserialize_any! {
    bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct seq tuple
    tuple_struct map enum identifier ignored_any
  }
}

struct Items {
  items: std::iter::Enumerate<std::vec::IntoIter<Given>>,
}

impl<'de> SeqAccess<'de> for Items {
  type Error = OptionError;

  fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, OptionError> {
    match self.items.next() {
      Some((index, item)) => seed.deserialize(item).map(Some).map_err(|e| e.at(format!("[{index}]"))),
      None => Ok(None),
    }
  }
}

struct Entries {
  entries: std::vec::IntoIter<(String, Given)>,
  value: Option<(String, Given)>,
}

impl<'de> MapAccess<'de> for Entries {
  type Error = OptionError;

  fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, OptionError> {
    let Some((key, value)) = self.entries.next() else { return Ok(None) };
    let read = seed.deserialize(IntoDeserializer::<OptionError>::into_deserializer(key.clone()))?;
    self.value = Some((key, value));
    Ok(Some(read))
  }

  fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, OptionError> {
    let (key, value) = self.value.take().ok_or_else(|| de::Error::custom("a value without its key"))?;
    seed.deserialize(value).map_err(|e| e.at(key))
  }
}

#[cfg(test)]
mod tests;
