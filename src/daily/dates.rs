//! Dates as DataFusion and Delta store them: DATE is days since 1970-01-01.

use chrono::NaiveDate;
use datafusion::common::ScalarValue;

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

/// `date` as a DATE value.
pub(crate) fn date32(date: NaiveDate) -> i32 {
    (date - epoch()).num_days() as i32
}

/// `date` as a SQL DATE literal or parameter.
pub(crate) fn date_value(date: NaiveDate) -> ScalarValue {
    ScalarValue::Date32(Some(date32(date)))
}

/// A DATE value as a date.
pub(crate) fn from_date32(days: i32) -> NaiveDate {
    epoch() + chrono::Duration::days(days.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_through_days_since_the_epoch() {
        let d = NaiveDate::from_ymd_opt(2025, 1, 10).unwrap();
        assert_eq!(date32(epoch()), 0);
        assert_eq!(date32(d), 20_098);
        assert_eq!(from_date32(date32(d)), d);
        assert_eq!(
            from_date32(-1),
            NaiveDate::from_ymd_opt(1969, 12, 31).unwrap()
        );
    }
}
