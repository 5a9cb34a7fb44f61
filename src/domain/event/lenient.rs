//! Deserializers that take a field in every shape the Sentry SDKs send it:
//! text as strings or numbers, lists bare or as `{"values": [...]}`,
//! timestamps as RFC 3339 text or Unix seconds, `null` for "absent".
//!
//! They read the input in one pass with no intermediate tree, except for
//! the rare shapes that need one (a single exception sent without its list).
//! A value of a shape no SDK sends is an error; the payload's reader turns
//! it into [`crate::Error::InvalidInput`] naming the top-level field.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use uuid::Uuid;

/// A map key, borrowed from the input when it holds no escapes.
pub(super) struct Key<'de>(pub Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// A JSON object with known fields and a bag for the rest, so that fields
/// Mesher does not know survive to the event page.
pub(super) trait Fields: Default {
    /// What the object is, for error messages.
    const EXPECTING: &'static str;

    /// Reads the value of `key` into its field; `false` when `key` is not a
    /// known field (its value is then still unread).
    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error>;

    /// Where unknown fields go.
    fn other(&mut self) -> &mut Map<String, Value>;
}

/// Reads every entry of `map` into `out`. When a value fails, its key is
/// handed to `failed` before the error is returned.
pub(super) fn read_fields<'de, A: MapAccess<'de>, T: Fields>(
    mut map: A,
    out: &mut T,
    mut failed: impl FnMut(&str),
) -> Result<(), A::Error> {
    while let Some(Key(key)) = map.next_key()? {
        let error = match out.read(&key, &mut map) {
            Ok(true) => continue,
            Ok(false) => match map.next_value::<Value>() {
                Ok(value) => {
                    out.other().insert(key.into_owned(), value);
                    continue;
                }
                Err(e) => e,
            },
            Err(e) => e,
        };
        failed(&key);
        return Err(error);
    }
    Ok(())
}

/// `Deserialize` for a [`Fields`] type.
pub(super) fn deserialize_fields<'de, D: Deserializer<'de>, T: Fields>(
    d: D,
) -> Result<T, D::Error> {
    struct FieldsVisitor<T>(PhantomData<T>);
    impl<'de, T: Fields> Visitor<'de> for FieldsVisitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(T::EXPECTING)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            let mut out = T::default();
            read_fields(map, &mut out, |_| {})?;
            Ok(out)
        }
    }
    d.deserialize_map(FieldsVisitor(PhantomData))
}

/// Text from any JSON scalar: numbers and booleans as JSON writes them
/// (SDKs send releases, tag values and exception values as numbers).
pub(super) struct Text(pub Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("text or a number")
            }
            fn visit_str<E>(self, v: &str) -> Result<Text, E> {
                Ok(Text(Some(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text, E> {
                Ok(Text(Some(v)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Text, E> {
                Ok(Text(Some(v.to_string())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Text, E> {
                Ok(Text(Some(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Text, E> {
                Ok(Text(Some(v.to_string())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Text, E> {
                Ok(Text(Some(Value::from(v).to_string())))
            }
            fn visit_unit<E>(self) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_none<E>(self) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Text, D::Error> {
                d.deserialize_any(self)
            }
        }
        d.deserialize_any(TextVisitor)
    }
}

/// A boolean, also written as `0`/`1` or `"true"`/`"false"`.
pub(super) struct Flag(pub Option<bool>);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FlagVisitor;
        impl<'de> Visitor<'de> for FlagVisitor {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(Some(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Flag, E> {
                match v {
                    0 | 1 => Ok(Flag(Some(v == 1))),
                    _ => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Flag, E> {
                match v {
                    0 | 1 => Ok(Flag(Some(v == 1))),
                    _ => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Flag, E> {
                match v {
                    "true" | "True" | "1" => Ok(Flag(Some(true))),
                    "false" | "False" | "0" => Ok(Flag(Some(false))),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_unit<E>(self) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_none<E>(self) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Flag, D::Error> {
                d.deserialize_any(self)
            }
        }
        d.deserialize_any(FlagVisitor)
    }
}

/// A non-negative integer (a line or column), also written as a float
/// with no fraction or as digits in a string.
pub(super) struct Count(pub Option<u64>);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl<'de> Visitor<'de> for CountVisitor {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Count, E> {
                Ok(Count(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                u64::try_from(v)
                    .map(|v| Count(Some(v)))
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Count, E> {
                if v.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&v) {
                    Ok(Count(Some(v as u64)))
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(v), &self))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Count, E> {
                v.trim()
                    .parse()
                    .map(|v| Count(Some(v)))
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
            fn visit_unit<E>(self) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_none<E>(self) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Count, D::Error> {
                d.deserialize_any(self)
            }
        }
        d.deserialize_any(CountVisitor)
    }
}

/// A point in time: RFC 3339 text (a missing offset means UTC, as relay
/// reads it) or Unix seconds, integer or float.
pub(super) struct Stamp(pub Option<DateTime<Utc>>);

/// Parses a timestamp as [`Stamp`] does; `None` when it is not one or lies
/// past the year 9999.
pub(super) fn parse_timestamp_text(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    let parsed = DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| text.parse::<DateTime<Utc>>())
        .or_else(|_| text.parse::<NaiveDateTime>().map(|t| t.and_utc()))
        .ok()?;
    in_range(parsed)
}

/// Unix seconds as a timestamp; `None` outside years 1 to 9999.
pub(super) fn timestamp_from_seconds(seconds: f64) -> Option<DateTime<Utc>> {
    if !seconds.is_finite() {
        return None;
    }
    let whole = seconds.floor();
    // Outside ±2^53 a float has no fraction left and the cast saturates;
    // the range check below refuses such times anyway.
    let nanos = ((seconds - whole) * 1e9).round().min(999_999_999.0) as u32;
    in_range(DateTime::from_timestamp(whole as i64, nanos)?)
}

fn in_range(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    use chrono::Datelike;
    (1..=9999).contains(&t.year()).then_some(t)
}

impl<'de> Deserialize<'de> for Stamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StampVisitor;
        impl StampVisitor {
            fn seconds<E: de::Error>(
                &self,
                v: f64,
                unexpected: de::Unexpected,
            ) -> Result<Stamp, E> {
                timestamp_from_seconds(v)
                    .map(|t| Stamp(Some(t)))
                    .ok_or_else(|| E::invalid_value(unexpected, self))
            }
        }
        impl<'de> Visitor<'de> for StampVisitor {
            type Value = Stamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp or Unix seconds in years 1 to 9999")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Stamp, E> {
                parse_timestamp_text(v)
                    .map(|t| Stamp(Some(t)))
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Stamp, E> {
                self.seconds(v as f64, de::Unexpected::Unsigned(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Stamp, E> {
                self.seconds(v as f64, de::Unexpected::Signed(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Stamp, E> {
                self.seconds(v, de::Unexpected::Float(v))
            }
            fn visit_unit<E>(self) -> Result<Stamp, E> {
                Ok(Stamp(None))
            }
            fn visit_none<E>(self) -> Result<Stamp, E> {
                Ok(Stamp(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Stamp, D::Error> {
                d.deserialize_any(self)
            }
        }
        d.deserialize_any(StampVisitor)
    }
}

/// An event id: 32 hex digits as the SDKs send it, or a hyphenated UUID.
pub(super) struct EventId(pub Option<Uuid>);

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Text::deserialize(d)?.0 {
            None => Ok(EventId(None)),
            Some(text) => match text.len() {
                32 | 36 => Uuid::try_parse(&text)
                    .map(|id| EventId(Some(id)))
                    .map_err(|_| de::Error::custom("event_id must be 32 hex digits or a UUID")),
                _ => Err(de::Error::custom(
                    "event_id must be 32 hex digits or a UUID",
                )),
            },
        }
    }
}

/// A list sent bare, as `{"values": [...]}`, or (old clients) one item
/// alone. `null` items are dropped.
pub(super) struct Values<T>(pub Option<Vec<T>>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Values<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValuesVisitor(PhantomData))
    }
}

struct ValuesVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ValuesVisitor<T> {
    type Value = Values<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list, or an object with a `values` list")
    }

    fn visit_unit<E>(self) -> Result<Values<T>, E> {
        Ok(Values(None))
    }

    fn visit_none<E>(self) -> Result<Values<T>, E> {
        Ok(Values(None))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Values<T>, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Values<T>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element::<Option<T>>()? {
            out.extend(item);
        }
        Ok(Values(Some(out)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Values<T>, A::Error> {
        let Some(Key(first)) = map.next_key()? else {
            return Ok(Values(Some(Vec::new())));
        };
        if first == "values" {
            // The usual shape: the list, then nothing that matters.
            let values = map.next_value::<Values<T>>()?.0.unwrap_or_default();
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Values(Some(values)));
        }
        // A container whose `values` is not first, or a single item: look
        // at the whole object to tell which.
        let mut object = Map::new();
        object.insert(first.into_owned(), map.next_value()?);
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            object.insert(key, value);
        }
        let values = match object.remove("values") {
            Some(values) => Values::<T>::deserialize(values).map_err(de::Error::custom)?,
            None => Values(Some(vec![
                T::deserialize(Value::Object(object)).map_err(de::Error::custom)?,
            ])),
        };
        Ok(values)
    }
}

/// A list of text, each item as [`Text`] reads it (`null` becomes ""), or
/// one text alone.
pub(super) struct Texts(pub Option<Vec<String>>);

impl<'de> Deserialize<'de> for Texts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextsVisitor;
        impl<'de> Visitor<'de> for TextsVisitor {
            type Value = Texts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of text")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Texts, A::Error> {
                let mut out = Vec::new();
                while let Some(Text(item)) = seq.next_element()? {
                    out.push(item.unwrap_or_default());
                }
                Ok(Texts(Some(out)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Texts, E> {
                Ok(Texts(Some(vec![v.to_owned()])))
            }
            fn visit_unit<E>(self) -> Result<Texts, E> {
                Ok(Texts(None))
            }
            fn visit_none<E>(self) -> Result<Texts, E> {
                Ok(Texts(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Texts, D::Error> {
                d.deserialize_any(self)
            }
        }
        d.deserialize_any(TextsVisitor)
    }
}

/// Tags: an object, or a list of `[key, value]` pairs. Values that are not
/// text are stringified (objects and lists as JSON); `null` drops the tag.
pub(super) struct Tags(pub BTreeMap<String, String>);

fn tag_value(value: Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TagsVisitor;
        impl<'de> Visitor<'de> for TagsVisitor {
            type Value = Tags;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object or a list of [key, value] pairs")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tags, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    if let Some(value) = tag_value(value) {
                        out.insert(key, value);
                    }
                }
                Ok(Tags(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tags, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(pair) = seq.next_element::<Option<(Text, Value)>>()? {
                    if let Some((Text(Some(key)), value)) = pair
                        && let Some(value) = tag_value(value)
                    {
                        out.insert(key, value);
                    }
                }
                Ok(Tags(out))
            }
            fn visit_unit<E>(self) -> Result<Tags, E> {
                Ok(Tags(BTreeMap::new()))
            }
            fn visit_none<E>(self) -> Result<Tags, E> {
                Ok(Tags(BTreeMap::new()))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Tags, D::Error> {
                d.deserialize_any(self)
            }
        }
        d.deserialize_any(TagsVisitor)
    }
}

/// Shorthands for [`Fields::read`]: the next value read leniently.
pub(super) fn text<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<String>, A::Error> {
    Ok(map.next_value::<Text>()?.0)
}

pub(super) fn flag<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<bool>, A::Error> {
    Ok(map.next_value::<Flag>()?.0)
}

pub(super) fn count<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<u64>, A::Error> {
    Ok(map.next_value::<Count>()?.0)
}

pub(super) fn texts<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<Vec<String>>, A::Error> {
    Ok(map.next_value::<Texts>()?.0)
}

pub(super) fn stamp<'de, A: MapAccess<'de>>(
    map: &mut A,
) -> Result<Option<DateTime<Utc>>, A::Error> {
    Ok(map.next_value::<Stamp>()?.0)
}

pub(super) fn values<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    map: &mut A,
) -> Result<Option<Vec<T>>, A::Error> {
    Ok(map.next_value::<Values<T>>()?.0)
}

/// Any JSON; `null` is none.
pub(super) fn any<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<Value>, A::Error> {
    map.next_value()
}

/// A JSON object; `null` is none, anything else an error.
pub(super) fn object<'de, A: MapAccess<'de>>(
    map: &mut A,
) -> Result<Option<Map<String, Value>>, A::Error> {
    map.next_value()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn parse<T: for<'de> Deserialize<'de>>(json: &str) -> serde_json::Result<T> {
        serde_json::from_str(json)
    }

    #[test]
    fn text_takes_scalars() {
        let cases = [
            (r#""abc""#, Some("abc")),
            ("12", Some("12")),
            ("-3", Some("-3")),
            ("1.5", Some("1.5")),
            ("true", Some("true")),
            ("null", None),
        ];
        for (json, want) in cases {
            assert_eq!(parse::<Text>(json).unwrap().0.as_deref(), want, "{json}");
        }
        for bad in ["[1]", "{}"] {
            assert!(parse::<Text>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_as_text_or_seconds() {
        let want = Utc.with_ymd_and_hms(2011, 5, 2, 17, 41, 36).unwrap();
        for json in [
            r#""2011-05-02T17:41:36Z""#,
            r#""2011-05-02T17:41:36""#,
            r#""2011-05-02T17:41:36.000""#,
            r#""2011-05-02T19:41:36+02:00""#,
            r#""2011-05-02 17:41:36Z""#,
            "1304358096",
            "1304358096.0",
        ] {
            assert_eq!(parse::<Stamp>(json).unwrap().0, Some(want), "{json}");
        }
        let frac = parse::<Stamp>("1304358096.25").unwrap().0.unwrap();
        assert_eq!(frac.timestamp_subsec_millis(), 250);
        assert_eq!(parse::<Stamp>("null").unwrap().0, None);
        for bad in [
            r#""yesterday""#,
            r#""""#,
            "1e300",
            "-1e18",
            "253402300800",
            "true",
            "[]",
            r#""10000-01-01T00:00:00Z""#,
        ] {
            assert!(parse::<Stamp>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn event_ids_simple_or_hyphenated() {
        let id = Uuid::parse_str("fc6d8c0c-43fc-4630-ad85-0ee518f1b9d0").unwrap();
        for json in [
            r#""fc6d8c0c43fc4630ad850ee518f1b9d0""#,
            r#""fc6d8c0c-43fc-4630-ad85-0ee518f1b9d0""#,
            r#""FC6D8C0C43FC4630AD850EE518F1B9D0""#,
        ] {
            assert_eq!(parse::<EventId>(json).unwrap().0, Some(id), "{json}");
        }
        for bad in [
            r#""xyz""#,
            r#""fc6d8c0c43fc4630ad850ee518f1b9dz""#,
            "12",
            r#""""#,
        ] {
            assert!(parse::<EventId>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_in_every_shape() {
        let cases = [
            ("[1, 2]", Some(vec![1, 2])),
            (r#"{"values": [1, null, 2]}"#, Some(vec![1, 2])),
            (r#"{"other": true, "values": [3]}"#, Some(vec![3])),
            (r#"{"values": null}"#, Some(vec![])),
            ("{}", Some(vec![])),
            ("null", None),
        ];
        for (json, want) in cases {
            assert_eq!(parse::<Values<u32>>(json).unwrap().0, want, "{json}");
        }
        let one: Values<BTreeMap<String, u32>> = parse(r#"{"a": 1}"#).unwrap();
        assert_eq!(one.0.unwrap()[0]["a"], 1);
        assert!(parse::<Values<u32>>(r#""text""#).is_err());
    }

    #[test]
    fn tags_as_object_or_pairs() {
        let want: BTreeMap<String, String> = [("a", "1"), ("b", "x"), ("c", "[1]"), ("d", "true")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let object = r#"{"a": 1, "b": "x", "c": [1], "d": true, "e": null}"#;
        let pairs = r#"[["a", 1], ["b", "x"], ["c", [1]], ["d", true], ["e", null], null]"#;
        assert_eq!(parse::<Tags>(object).unwrap().0, want);
        assert_eq!(parse::<Tags>(pairs).unwrap().0, want);
        assert!(parse::<Tags>("null").unwrap().0.is_empty());
        for bad in [r#"[["a"]]"#, r#"[["a", 1, 2]]"#, r#""a""#, "[1]"] {
            assert!(parse::<Tags>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_and_counts() {
        assert_eq!(parse::<Flag>("true").unwrap().0, Some(true));
        assert_eq!(parse::<Flag>("0").unwrap().0, Some(false));
        assert_eq!(parse::<Flag>(r#""false""#).unwrap().0, Some(false));
        assert!(parse::<Flag>("2").is_err());
        assert_eq!(parse::<Count>("12").unwrap().0, Some(12));
        assert_eq!(parse::<Count>("12.0").unwrap().0, Some(12));
        assert_eq!(parse::<Count>(r#""12""#).unwrap().0, Some(12));
        assert!(parse::<Count>("-1").is_err());
        assert!(parse::<Count>("1.5").is_err());
    }
}
