//! Conversions between `spin:postgres@4.2.0` values and PostgreSQL's wire types.

use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use postgres_range::{BoundSided, BoundType, Range, RangeBound};
use rust_decimal::Decimal;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};

use super::bindings::pg::{DbDataType, DbValue, Interval, ParameterValue, RangeBoundKind};

type BoxError = Box<dyn StdError + Sync + Send>;

/// A guest parameter ready to be sent to the server.
pub type SqlParam = Box<dyn ToSql + Sync + Send>;

pub fn to_sql_params(params: Vec<ParameterValue>) -> Result<Vec<SqlParam>, String> {
    params.into_iter().map(to_sql_param).collect()
}

fn parse_decimal(s: &str) -> Result<Decimal, String> {
    s.parse::<Decimal>()
        .map_err(|e| format!("invalid decimal {s:?}: {e}"))
}

fn to_sql_param(value: ParameterValue) -> Result<SqlParam, String> {
    Ok(match value {
        ParameterValue::Boolean(v) => Box::new(v),
        ParameterValue::Int8(v) => Box::new(v),
        ParameterValue::Int16(v) => Box::new(v),
        ParameterValue::Int32(v) => Box::new(v),
        ParameterValue::Int64(v) => Box::new(v),
        ParameterValue::Floating32(v) => Box::new(v),
        ParameterValue::Floating64(v) => Box::new(v),
        ParameterValue::Str(v) => Box::new(v),
        ParameterValue::Binary(v) => Box::new(v),
        ParameterValue::Date((y, m, d)) => Box::new(
            NaiveDate::from_ymd_opt(y, m.into(), d.into())
                .ok_or_else(|| format!("invalid date {y}-{m}-{d}"))?,
        ),
        ParameterValue::Time((h, mi, s, ns)) => Box::new(
            NaiveTime::from_hms_nano_opt(h.into(), mi.into(), s.into(), ns)
                .ok_or_else(|| format!("invalid time {h}:{mi}:{s}.{ns}"))?,
        ),
        ParameterValue::Datetime((y, mo, d, h, mi, s, ns)) => {
            let date = NaiveDate::from_ymd_opt(y, mo.into(), d.into())
                .ok_or_else(|| format!("invalid date {y}-{mo}-{d}"))?;
            let time = NaiveTime::from_hms_nano_opt(h.into(), mi.into(), s.into(), ns)
                .ok_or_else(|| format!("invalid time {h}:{mi}:{s}.{ns}"))?;
            Box::new(NaiveDateTime::new(date, time))
        }
        ParameterValue::Timestamp(secs) => Box::new(
            chrono::DateTime::from_timestamp(secs, 0)
                .ok_or_else(|| format!("invalid timestamp {secs}"))?,
        ),
        ParameterValue::Uuid(s) => {
            Box::new(uuid::Uuid::parse_str(&s).map_err(|e| format!("invalid uuid {s:?}: {e}"))?)
        }
        ParameterValue::Jsonb(bytes) => Box::new(
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .map_err(|e| format!("invalid jsonb: {e}"))?,
        ),
        ParameterValue::Decimal(s) => Box::new(parse_decimal(&s)?),
        ParameterValue::RangeInt32((lo, hi)) => Box::new(make_range(lo, hi)),
        ParameterValue::RangeInt64((lo, hi)) => Box::new(make_range(lo, hi)),
        ParameterValue::RangeDecimal((lo, hi)) => {
            let conv = |b: Option<(String, RangeBoundKind)>| -> Result<_, String> {
                b.map(|(v, k)| Ok((DecimalBound(parse_decimal(&v)?), k)))
                    .transpose()
            };
            Box::new(make_range(conv(lo)?, conv(hi)?))
        }
        ParameterValue::ArrayInt32(v) => Box::new(v),
        ParameterValue::ArrayInt64(v) => Box::new(v),
        ParameterValue::ArrayDecimal(v) => Box::new(
            v.iter()
                .map(|o| o.as_deref().map(parse_decimal).transpose())
                .collect::<Result<Vec<_>, _>>()?,
        ),
        ParameterValue::ArrayStr(v) => Box::new(v),
        ParameterValue::Interval(i) => Box::new(PgInterval(i)),
        ParameterValue::DbNull => Box::new(Null),
    })
}

fn bound_type(kind: RangeBoundKind) -> BoundType {
    match kind {
        RangeBoundKind::Inclusive => BoundType::Inclusive,
        RangeBoundKind::Exclusive => BoundType::Exclusive,
    }
}

fn bound_kind(t: BoundType) -> RangeBoundKind {
    match t {
        BoundType::Inclusive => RangeBoundKind::Inclusive,
        BoundType::Exclusive => RangeBoundKind::Exclusive,
    }
}

fn make_range<T>(lo: Option<(T, RangeBoundKind)>, hi: Option<(T, RangeBoundKind)>) -> Range<T>
where
    T: PartialOrd + postgres_range::Normalizable,
{
    Range::new(
        lo.map(|(v, k)| RangeBound::new(v, bound_type(k))),
        hi.map(|(v, k)| RangeBound::new(v, bound_type(k))),
    )
}

type Bound<U> = Option<(U, RangeBoundKind)>;

fn split_range<T: PartialOrd + Clone + postgres_range::Normalizable, U>(
    r: &Range<T>,
    f: impl Fn(&T) -> U,
) -> (Bound<U>, Bound<U>) {
    fn bound<S: BoundSided, T: PartialOrd, U>(
        b: Option<&RangeBound<S, T>>,
        f: &impl Fn(&T) -> U,
    ) -> Option<(U, RangeBoundKind)> {
        b.map(|b| (f(&b.value), bound_kind(b.type_)))
    }
    if r.is_empty() {
        // An empty range has no bounds; Spin reports it the same way.
        return (None, None);
    }
    (bound(r.lower(), &f), bound(r.upper(), &f))
}

/// `numeric` values inside a `numrange`: postgres_range needs an orderable, normalisable type.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
struct DecimalBound(Decimal);

impl postgres_range::Normalizable for DecimalBound {
    fn normalize<S: BoundSided>(bound: RangeBound<S, Self>) -> RangeBound<S, Self> {
        bound
    }
}

impl ToSql for DecimalBound {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        self.0.to_sql(ty, out)
    }
    fn accepts(ty: &Type) -> bool {
        <Decimal as ToSql>::accepts(ty)
    }
    to_sql_checked!();
}

impl<'a> FromSql<'a> for DecimalBound {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Decimal::from_sql(ty, raw).map(DecimalBound)
    }
    fn accepts(ty: &Type) -> bool {
        <Decimal as FromSql>::accepts(ty)
    }
}

/// SQL NULL that fits any parameter type.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(&self, _: &Type, _: &mut BytesMut) -> Result<IsNull, BoxError> {
        Ok(IsNull::Yes)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

/// `interval` in PostgreSQL's binary layout: microseconds, days, months.
#[derive(Debug)]
struct PgInterval(Interval);

impl ToSql for PgInterval {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_i64(self.0.micros);
        out.put_i32(self.0.days);
        out.put_i32(self.0.months);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
    to_sql_checked!();
}

impl<'a> FromSql<'a> for PgInterval {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let bytes: [u8; 16] = raw.try_into().map_err(|_| "interval must be 16 bytes")?;
        let micros = i64::from_be_bytes(bytes[0..8].try_into()?);
        let days = i32::from_be_bytes(bytes[8..12].try_into()?);
        let months = i32::from_be_bytes(bytes[12..16].try_into()?);
        Ok(PgInterval(Interval {
            micros,
            days,
            months,
        }))
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

/// Any value, as the raw bytes the server sent: for types the interface cannot describe.
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

pub fn data_type(ty: &Type) -> DbDataType {
    match *ty {
        Type::BOOL => DbDataType::Boolean,
        Type::CHAR => DbDataType::Int8,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DbDataType::Str,
        Type::BYTEA => DbDataType::Binary,
        Type::DATE => DbDataType::Date,
        Type::TIME => DbDataType::Time,
        Type::TIMESTAMP => DbDataType::Datetime,
        Type::TIMESTAMPTZ => DbDataType::Timestamp,
        Type::UUID => DbDataType::Uuid,
        Type::JSONB | Type::JSON => DbDataType::Jsonb,
        Type::NUMERIC => DbDataType::Decimal,
        Type::INT4_RANGE => DbDataType::RangeInt32,
        Type::INT8_RANGE => DbDataType::RangeInt64,
        Type::NUM_RANGE => DbDataType::RangeDecimal,
        Type::INT4_ARRAY => DbDataType::ArrayInt32,
        Type::INT8_ARRAY => DbDataType::ArrayInt64,
        Type::NUMERIC_ARRAY => DbDataType::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => DbDataType::ArrayStr,
        Type::INTERVAL => DbDataType::Interval,
        _ => DbDataType::Other(ty.name().to_owned()),
    }
}

fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<Option<T>, String> {
    row.try_get::<_, Option<T>>(i)
        .map_err(|e| format!("column {i}: {e}"))
}

fn value<T>(v: Option<T>, f: impl FnOnce(T) -> DbValue) -> DbValue {
    v.map(f).unwrap_or(DbValue::DbNull)
}

pub fn row_values(row: &Row) -> Result<Vec<DbValue>, String> {
    (0..row.len()).map(|i| column_value(row, i)).collect()
}

fn column_value(row: &Row, i: usize) -> Result<DbValue, String> {
    let ty = row.columns()[i].type_();
    Ok(match *ty {
        Type::BOOL => value(get::<bool>(row, i)?, DbValue::Boolean),
        Type::CHAR => value(get::<i8>(row, i)?, DbValue::Int8),
        Type::INT2 => value(get::<i16>(row, i)?, DbValue::Int16),
        Type::INT4 => value(get::<i32>(row, i)?, DbValue::Int32),
        Type::INT8 => value(get::<i64>(row, i)?, DbValue::Int64),
        Type::FLOAT4 => value(get::<f32>(row, i)?, DbValue::Floating32),
        Type::FLOAT8 => value(get::<f64>(row, i)?, DbValue::Floating64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            value(get::<String>(row, i)?, DbValue::Str)
        }
        Type::BYTEA => value(get::<Vec<u8>>(row, i)?, DbValue::Binary),
        Type::DATE => value(get::<NaiveDate>(row, i)?, |d| {
            DbValue::Date((d.year(), d.month() as u8, d.day() as u8))
        }),
        Type::TIME => value(get::<NaiveTime>(row, i)?, |t| {
            DbValue::Time((
                t.hour() as u8,
                t.minute() as u8,
                t.second() as u8,
                t.nanosecond(),
            ))
        }),
        Type::TIMESTAMP => value(get::<NaiveDateTime>(row, i)?, |dt| {
            DbValue::Datetime((
                dt.year(),
                dt.month() as u8,
                dt.day() as u8,
                dt.hour() as u8,
                dt.minute() as u8,
                dt.second() as u8,
                dt.nanosecond(),
            ))
        }),
        Type::TIMESTAMPTZ => value(get::<chrono::DateTime<chrono::Utc>>(row, i)?, |dt| {
            DbValue::Timestamp(dt.timestamp())
        }),
        Type::UUID => value(get::<uuid::Uuid>(row, i)?, |u| DbValue::Uuid(u.to_string())),
        Type::JSONB | Type::JSON => value(get::<serde_json::Value>(row, i)?, |j| {
            DbValue::Jsonb(serde_json::to_vec(&j).unwrap_or_default())
        }),
        Type::NUMERIC => value(get::<Decimal>(row, i)?, |d| DbValue::Decimal(d.to_string())),
        Type::INT4_RANGE => value(get::<Range<i32>>(row, i)?, |r| {
            DbValue::RangeInt32(split_range(&r, |v| *v))
        }),
        Type::INT8_RANGE => value(get::<Range<i64>>(row, i)?, |r| {
            DbValue::RangeInt64(split_range(&r, |v| *v))
        }),
        Type::NUM_RANGE => value(get::<Range<DecimalBound>>(row, i)?, |r| {
            DbValue::RangeDecimal(split_range(&r, |v| v.0.to_string()))
        }),
        Type::INT4_ARRAY => value(get::<Vec<Option<i32>>>(row, i)?, DbValue::ArrayInt32),
        Type::INT8_ARRAY => value(get::<Vec<Option<i64>>>(row, i)?, DbValue::ArrayInt64),
        Type::NUMERIC_ARRAY => value(get::<Vec<Option<Decimal>>>(row, i)?, |v| {
            DbValue::ArrayDecimal(v.into_iter().map(|d| d.map(|d| d.to_string())).collect())
        }),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => {
            value(get::<Vec<Option<String>>>(row, i)?, DbValue::ArrayStr)
        }
        Type::INTERVAL => value(get::<PgInterval>(row, i)?, |i| DbValue::Interval(i.0)),
        _ if matches!(ty.kind(), Kind::Enum(_)) => value(get::<Raw>(row, i)?, |r| {
            DbValue::Str(String::from_utf8_lossy(&r.0).into_owned())
        }),
        _ => value(get::<Raw>(row, i)?, |r| DbValue::Unsupported(r.0)),
    })
}

/// Approximate memory a value takes, to cap what a query may buffer in the host.
pub fn value_size(v: &DbValue) -> usize {
    let base = std::mem::size_of::<DbValue>();
    base + match v {
        DbValue::Str(s) | DbValue::Uuid(s) | DbValue::Decimal(s) => s.len(),
        DbValue::Binary(b) | DbValue::Jsonb(b) | DbValue::Unsupported(b) => b.len(),
        DbValue::ArrayInt32(a) => a.len() * 8,
        DbValue::ArrayInt64(a) => a.len() * 16,
        DbValue::ArrayStr(a) | DbValue::ArrayDecimal(a) => a
            .iter()
            .map(|s| 24 + s.as_ref().map_or(0, String::len))
            .sum(),
        _ => 0,
    }
}
