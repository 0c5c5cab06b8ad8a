//! Timestamps as platforms write them: RFC 3339 with any number of fractional
//! digits (Bondora sends seven), local times without an offset (Zonky means
//! Europe/Prague), or bare dates.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::error::Error;

/// Parses `raw`; a value without an offset is read in `zone`.
pub fn parse_timestamp(raw: &str, zone: Tz) -> Result<DateTime<Utc>, Error> {
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(raw) {
        return Ok(with_offset.with_timezone(&Utc));
    }
    let local = NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M"))
        .or_else(|_| {
            NaiveDate::parse_from_str(raw, "%Y-%m-%d").map(|d| d.and_time(chrono::NaiveTime::MIN))
        })
        .map_err(|_| Error::upstream_protocol(format!("unreadable timestamp {raw:?}")))?;
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        // In the autumn overlap take the earlier instant, as java.time does.
        LocalResult::Ambiguous(earlier, _) => Ok(earlier.with_timezone(&Utc)),
        LocalResult::None => Err(Error::upstream_protocol(format!(
            "timestamp {raw:?} does not exist in {zone}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Prague;

    fn utc(raw: &str) -> String {
        parse_timestamp(raw, Prague).unwrap().to_rfc3339()
    }

    #[test]
    fn reads_every_form_platforms_send() {
        assert_eq!(
            utc("2016-04-19T18:25:41.208+02:00"),
            "2016-04-19T16:25:41.208+00:00"
        );
        assert_eq!(
            utc("2024-12-09T17:41:11.8993295Z"),
            "2024-12-09T17:41:11.899329500+00:00"
        );
        assert_eq!(
            utc("2024-12-09T19:41:11.8993295+02:00"),
            "2024-12-09T17:41:11.899329500+00:00"
        );
        // No offset: Prague time (CET in winter, CEST in summer).
        assert_eq!(utc("2024-01-10T12:00:00"), "2024-01-10T11:00:00+00:00");
        assert_eq!(
            utc("2024-07-10T12:00:00.5"),
            "2024-07-10T10:00:00.500+00:00"
        );
        assert_eq!(utc("2016-08-20"), "2016-08-19T22:00:00+00:00");
        assert!(parse_timestamp("yesterday", Prague).is_err());
    }
}
