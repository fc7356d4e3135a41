//! Timestamps in the index as (seconds, nanoseconds) rather than chrono's RFC 3339 text: exact,
//! and formatting and parsing text was a fifth of the time of a large `wf gc`. Only for values of
//! the index (`RunView`, `TaskView`, `CheckpointRow`); records keep their encoding.

use chrono::{DateTime, TimeZone, Utc};
use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

fn parts(t: &DateTime<Utc>) -> (i64, u32) {
    (t.timestamp(), t.timestamp_subsec_nanos())
}

fn time<E: Error>((secs, nanos): (i64, u32)) -> Result<DateTime<Utc>, E> {
    Utc.timestamp_opt(secs, nanos)
        .single()
        .ok_or_else(|| E::custom("a timestamp out of range"))
}

pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    parts(t).serialize(s)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    time(<(i64, u32)>::deserialize(d)?)
}

pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        t.as_ref().map(parts).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        <Option<(i64, u32)>>::deserialize(d)?.map(time).transpose()
    }
}

/// `Option<(DateTime, String)>`: when and why a checkpoint was pruned.
pub mod pruned {
    use super::*;

    pub fn serialize<S: Serializer>(
        t: &Option<(DateTime<Utc>, String)>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        t.as_ref().map(|(t, why)| (parts(t), why)).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<(DateTime<Utc>, String)>, D::Error> {
        <Option<((i64, u32), String)>>::deserialize(d)?
            .map(|(t, why)| time(t).map(|t| (t, why)))
            .transpose()
    }

    /// [`serialize`] of a row read in place (`RowRef`): the same bytes.
    pub fn serialize_ref<S: Serializer>(
        t: &Option<(DateTime<Utc>, &str)>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        t.as_ref().map(|(t, why)| (parts(t), why)).serialize(s)
    }

    /// The same, with the policy borrowed from the bytes read (`RowRef`).
    pub fn deserialize_ref<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<(DateTime<Utc>, &'de str)>, D::Error> {
        <Option<((i64, u32), &'de str)>>::deserialize(d)?
            .map(|(t, why)| time(t).map(|t| (t, why)))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct T {
        #[serde(with = "crate::ts")]
        a: DateTime<Utc>,
        #[serde(with = "crate::ts::option")]
        b: Option<DateTime<Utc>>,
        #[serde(with = "crate::ts::pruned")]
        c: Option<(DateTime<Utc>, String)>,
    }

    #[test]
    fn round_trip_is_exact() -> Result<(), Box<dyn std::error::Error>> {
        let now = Utc::now();
        for v in [
            T {
                a: now,
                b: Some(now),
                c: Some((now, "7d".into())),
            },
            T {
                a: DateTime::<Utc>::MIN_UTC,
                b: Some(DateTime::<Utc>::MAX_UTC),
                c: None,
            },
        ] {
            let bytes = bincode::serialize(&v)?;
            assert_eq!(bincode::deserialize::<T>(&bytes)?, v);
        }
        Ok(())
    }
}
