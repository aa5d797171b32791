//! BGP communities as text: standard (RFC 1997) `asn:value` and large (RFC 8092)
//! `global:local1:local2`, the forms pools are written in and gobgpd prints. One parser for
//! both sides, so a pool's community and the daemon's reading of it cannot drift apart.

/// A large community: global administrator, local data 1, local data 2.
pub type LargeCommunity = (u32, u32, u32);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommunityError {
    #[error("{value:?} is not {form}")]
    Shape { value: String, form: &'static str },
    #[error("{value:?} has a part that is not a number in range")]
    Number {
        value: String,
        #[source]
        source: std::num::ParseIntError,
    },
}

/// `asn:value`, both 0–65535, as the 32-bit value `asn << 16 | value`.
pub fn parse_standard(text: &str) -> Result<u32, CommunityError> {
    let [asn, value] = parts::<u16, 2>(text, "asn:value")?;
    Ok(u32::from(asn) << 16 | u32::from(value))
}

/// `global:local1:local2`, each 0–4294967295.
pub fn parse_large(text: &str) -> Result<LargeCommunity, CommunityError> {
    let [global, local1, local2] = parts::<u32, 3>(text, "global:local1:local2")?;
    Ok((global, local1, local2))
}

fn parts<T, const N: usize>(text: &str, form: &'static str) -> Result<[T; N], CommunityError>
where
    T: std::str::FromStr<Err = std::num::ParseIntError> + Default + Copy,
{
    let split: Vec<&str> = text.split(':').collect();
    if split.len() != N {
        return Err(CommunityError::Shape {
            value: text.to_owned(),
            form,
        });
    }
    let mut numbers = [T::default(); N];
    for (slot, part) in numbers.iter_mut().zip(split) {
        *slot = part.parse().map_err(|source| CommunityError::Number {
            value: text.to_owned(),
            source,
        })?;
    }
    Ok(numbers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_and_large_communities_parse_in_range_only() {
        assert_eq!(parse_standard("64512:100"), Ok(64512 << 16 | 100));
        assert_eq!(parse_standard("65535:65535"), Ok(u32::MAX));
        assert!(matches!(
            parse_standard("65536:1"),
            Err(CommunityError::Number { .. })
        ));
        assert!(matches!(
            parse_standard("1:2:3"),
            Err(CommunityError::Shape { .. })
        ));
        assert_eq!(parse_large("4294967295:1:2"), Ok((u32::MAX, 1, 2)));
        assert!(matches!(
            parse_large("1:2"),
            Err(CommunityError::Shape { .. })
        ));
        assert!(matches!(
            parse_large("1:-2:3"),
            Err(CommunityError::Number { .. })
        ));
        assert_eq!(
            parse_standard("x").unwrap_err().to_string(),
            "\"x\" is not asn:value"
        );
    }
}
