//! `--cluster NAME`: the URLs given must be that cluster's servers, shard by
//! shard, as the servers themselves see it in `system.clusters` (each
//! server marks its own entry `is_local`). A mismatch is refused at start,
//! naming the URL and what the server says.

use super::shard::Shard;
use super::tsv;
use crate::{Error, Result};
use velostream_codecs::ddl;

/// Where one server says it stands in the cluster: (shard_num, replica_num),
/// one entry per `is_local` row.
pub type Placement = Vec<(u32, u32)>;

/// Checks `shards` against cluster `name` as the servers describe it.
pub async fn check(shards: &[std::sync::Arc<Shard>], name: &str) -> Result<()> {
    let quoted = ddl::quote_string(name);
    let first = &shards[0].replicas()[0];
    let shape_text = first
        .query_tsv(&format!(
            "SELECT shard_num, count() FROM system.clusters WHERE cluster = {quoted} \
             GROUP BY shard_num ORDER BY shard_num FORMAT TSV"
        ))
        .await?;
    let shape = numbers(&shape_text)
        .into_iter()
        .map(|(a, b)| (a, u64::from(b)))
        .collect::<Vec<_>>();
    let mut urls = Vec::new();
    let mut placements = Vec::new();
    for shard in shards {
        let mut su = Vec::new();
        let mut sp = Vec::new();
        for ch in shard.replicas() {
            let text = ch
                .query_tsv(&format!(
                    "SELECT shard_num, replica_num FROM system.clusters \
                     WHERE cluster = {quoted} AND is_local = 1 FORMAT TSV"
                ))
                .await?;
            su.push(ch.config().url.clone());
            sp.push(numbers(&text));
        }
        urls.push(su);
        placements.push(sp);
    }
    compare(name, &urls, &placements, &shape).map_err(Error::Config)
}

fn numbers(text: &str) -> Vec<(u32, u32)> {
    tsv::parse_rows(text)
        .into_iter()
        .filter_map(|r| Some((r.first()?.parse().ok()?, r.get(1)?.parse().ok()?)))
        .collect()
}

/// The rules: the cluster exists; it has as many shards as given; every
/// server is exactly one entry of it; the replicas given for a shard are
/// all in the same cluster shard, distinct shards are distinct, and every
/// replica of each shard is given.
/// Long: the rules of this comment, one block each, in the same order.
pub fn compare(
    name: &str,
    urls: &[Vec<String>],
    placements: &[Vec<Placement>],
    shape: &[(u32, u64)],
) -> std::result::Result<(), String> {
    let first = urls
        .first()
        .and_then(|s| s.first())
        .map_or("", String::as_str);
    if shape.is_empty() {
        return Err(format!(
            "--cluster {name}: no such cluster in system.clusters of {first} (remote_servers)"
        ));
    }
    if shape.len() != urls.len() {
        return Err(format!(
            "--cluster {name} has {} shards, but {} were given with --clickhouse-url",
            shape.len(),
            urls.len()
        ));
    }
    let mut seen_shards = Vec::new();
    for (i, (shard_urls, shard_places)) in urls.iter().zip(placements).enumerate() {
        let mut shard_num = None;
        let mut replicas = Vec::new();
        for (url, place) in shard_urls.iter().zip(shard_places) {
            let (s, r) = match place.as_slice() {
                [(s, r)] => (*s, Some(*r)),
                // ClickHouse 18.x marks every replica of a server's own
                // shard `is_local` (it compares hosts, not ports): the shard
                // is known, the replica is not.
                [(s, _), rest @ ..] if rest.iter().all(|(other, _)| other == s) => (*s, None),
                [] => {
                    return Err(format!(
                        "{url} (given as shard {}) is not a server of cluster {name} by its own system.clusters",
                        i + 1
                    ))
                }
                many => {
                    return Err(format!(
                        "{url} appears {} times in cluster {name}; each server must be one replica",
                        many.len()
                    ))
                }
            };
            match shard_num {
                None => shard_num = Some(s),
                Some(expected) if expected != s => {
                    return Err(format!(
                        "{url} is given as a replica of shard {} (with {}), but cluster {name} \
                         puts it in shard {s}, not {expected}",
                        i + 1,
                        shard_urls[0]
                    ))
                }
                Some(_) => {}
            }
            if r.is_some() && replicas.contains(&r) {
                return Err(format!(
                    "{url} is the same replica of cluster {name} as another URL of shard {}",
                    i + 1
                ));
            }
            replicas.push(r);
        }
        let s = shard_num.unwrap_or(0);
        if seen_shards.contains(&s) {
            return Err(format!(
                "the servers given as shard {} are cluster {name}'s shard {s}, which is given twice",
                i + 1
            ));
        }
        seen_shards.push(s);
        let want = shape.iter().find(|(n, _)| *n == s).map_or(0, |(_, c)| *c);
        if replicas.len() as u64 != want {
            return Err(format!(
                "shard {} ({}) has {want} replicas in cluster {name}, {} given",
                i + 1,
                shard_urls.join(","),
                replicas.len()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(v: &[&[&str]]) -> Vec<Vec<String>> {
        v.iter()
            .map(|s| s.iter().map(|x| x.to_string()).collect())
            .collect()
    }

    #[test]
    fn a_matching_two_by_two_cluster_passes() {
        let urls = u(&[&["a1", "a2"], &["b1", "b2"]]);
        let places = vec![
            vec![vec![(1, 1)], vec![(1, 2)]],
            vec![vec![(2, 1)], vec![(2, 2)]],
        ];
        assert_eq!(compare("c", &urls, &places, &[(1, 2), (2, 2)]), Ok(()));
    }

    #[test]
    fn servers_that_mark_their_whole_shard_local_pass() {
        // ClickHouse 18.16 on one host: each server reports every replica
        // of its own shard as `is_local`.
        let urls = u(&[&["a1", "a2"], &["b1", "b2"]]);
        let own = |shard| vec![(shard, 1), (shard, 2)];
        let places = vec![vec![own(1), own(1)], vec![own(2), own(2)]];
        assert_eq!(compare("c", &urls, &places, &[(1, 2), (2, 2)]), Ok(()));
        // A server of shard 2 given under shard 1 is still named.
        let wrong = u(&[&["a1", "b1"], &["b2"]]);
        let places = vec![vec![own(1), own(2)], vec![own(2)]];
        let e = compare("c", &wrong, &places, &[(1, 2), (2, 2)]).unwrap_err();
        assert!(
            e.contains("b1") && e.contains("puts it in shard 2, not 1"),
            "{e}"
        );
    }

    #[test]
    fn every_mismatch_is_named() {
        let shape = [(1, 2), (2, 2)];
        let urls = u(&[&["a1", "a2"], &["b1", "b2"]]);
        let e = compare("c", &urls, &[], &[]).unwrap_err();
        assert!(e.contains("no such cluster"), "{e}");
        let e = compare(
            "c",
            &u(&[&["a1", "a2"]]),
            &[vec![vec![(1, 1)], vec![(1, 2)]]],
            &shape,
        )
        .unwrap_err();
        assert!(e.contains("has 2 shards, but 1 were given"), "{e}");
        // b1 is really a replica of shard 1.
        let places = vec![
            vec![vec![(1, 1)], vec![(1, 2)]],
            vec![vec![(1, 2)], vec![(2, 2)]],
        ];
        let e = compare("c", &urls, &places, &shape).unwrap_err();
        assert!(
            e.contains("b2") && e.contains("puts it in shard 2, not 1"),
            "{e}"
        );
        // A URL that is not in the cluster at all.
        let places = vec![vec![vec![(1, 1)], vec![]], vec![vec![(2, 1)], vec![(2, 2)]]];
        let e = compare("c", &urls, &places, &shape).unwrap_err();
        assert!(
            e.contains("a2") && e.contains("not a server of cluster c"),
            "{e}"
        );
        // A replica left out.
        let urls3 = u(&[&["a1"], &["b1", "b2"]]);
        let places = vec![vec![vec![(1, 1)]], vec![vec![(2, 1)], vec![(2, 2)]]];
        let e = compare("c", &urls3, &places, &shape).unwrap_err();
        assert!(e.contains("has 2 replicas in cluster c, 1 given"), "{e}");
        // Two flags naming the same shard.
        let places = vec![
            vec![vec![(1, 1)], vec![(1, 2)]],
            vec![vec![(1, 1)], vec![(1, 2)]],
        ];
        let e = compare("c", &urls, &places, &shape).unwrap_err();
        assert!(e.contains("given twice"), "{e}");
    }
}
