//! The configuration templates, embedded in the binary from `infra/` (the
//! files the compose stack mounts where they fit), and their rendering.
//!
//! Two placeholder forms are filled in: `${NAME}` (local-only templates) and
//! ClickHouse's own `<tag from_env="NAME"/>` (files shared with the compose
//! stack, where the container's environment supplies the value), which
//! becomes `<tag>value</tag>`. Every placeholder must have a value: a
//! template never reaches a server half-rendered.

use crate::{Error, Result};

/// A template: its path under `infra/` (for messages) and its text.
#[derive(Clone, Copy, Debug)]
pub struct Template {
    /// Path under the repository's `infra/` directory.
    pub path: &'static str,
    /// The embedded text.
    pub text: &'static str,
    /// XML: values are escaped (`&`, `<`, `>`, quotes).
    pub xml: bool,
}

macro_rules! template {
    ($name:ident, $path:literal, $xml:expr) => {
        #[doc = concat!("`infra/", $path, "`")]
        pub const $name: Template = Template {
            path: $path,
            text: include_str!(concat!("../../../infra/", $path)),
            xml: $xml,
        };
    };
}

template!(CLICKHOUSE_CONFIG, "clickhouse/local/config.xml", true);
template!(CLICKHOUSE_USERS, "clickhouse/local/users.xml", true);
template!(CLICKHOUSE_HTTPS, "clickhouse/local/https.xml", true);
template!(
    CLICKHOUSE_SHARED,
    "clickhouse/config.d/velostream.xml",
    true
);
template!(CLICKHOUSE_REPLICA, "clickhouse/cluster/replica.xml", true);
template!(ZOOKEEPER_CFG, "zookeeper/zoo.cfg", false);
template!(PROMETHEUS_LOCAL, "prometheus/local.yml", false);

/// Every template (rendering tests walk them all).
pub const ALL: [Template; 7] = [
    CLICKHOUSE_CONFIG,
    CLICKHOUSE_USERS,
    CLICKHOUSE_HTTPS,
    CLICKHOUSE_SHARED,
    CLICKHOUSE_REPLICA,
    ZOOKEEPER_CFG,
    PROMETHEUS_LOCAL,
];

impl Template {
    /// Fills in every placeholder from `vars`; an unknown placeholder is an
    /// error naming the template and the placeholder.
    pub fn render(&self, vars: &[(&str, String)]) -> Result<String> {
        let mut value = |name: &str| -> Result<String> {
            let v = vars
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "template infra/{}: no value for placeholder {name}",
                        self.path
                    ))
                })?;
            Ok(if self.xml { xml_escape(v) } else { v.clone() })
        };
        let text = replace_dollar(self.text, &mut value)?;
        replace_from_env(&text, &mut value)
    }

    /// The names of the placeholders in this template.
    pub fn placeholders(&self) -> Vec<String> {
        let mut names = Vec::new();
        let _ = replace_dollar(self.text, &mut |n: &str| {
            names.push(n.to_string());
            Ok(String::new())
        });
        let _ = replace_from_env(self.text, &mut |n: &str| {
            names.push(n.to_string());
            Ok(String::new())
        });
        names.sort();
        names.dedup();
        names
    }
}

/// Replaces `${NAME}`.
fn replace_dollar(text: &str, value: &mut dyn FnMut(&str) -> Result<String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        out.push_str(&value(&rest[start + 2..start + 2 + len])?);
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Replaces `<tag from_env="NAME"/>` with `<tag>value</tag>`.
fn replace_from_env(text: &str, value: &mut dyn FnMut(&str) -> Result<String>) -> Result<String> {
    const ATTR: &str = " from_env=\"";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(attr) = rest.find(ATTR) {
        let open = rest[..attr].rfind('<').unwrap_or(attr);
        let tag = &rest[open + 1..attr];
        let after = &rest[attr + ATTR.len()..];
        let (Some(quote), true) = (after.find('"'), !tag.contains(char::is_whitespace)) else {
            out.push_str(&rest[..attr + ATTR.len()]);
            rest = after;
            continue;
        };
        let name = &after[..quote];
        let tail = after[quote + 1..].trim_start();
        let Some(tail) = tail.strip_prefix("/>") else {
            out.push_str(&rest[..attr + ATTR.len()]);
            rest = after;
            continue;
        };
        out.push_str(&rest[..open]);
        out.push_str(&format!("<{tag}>{}</{tag}>", value(name)?));
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

/// Escapes a value for XML text.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_both_placeholder_forms() {
        let t = Template {
            path: "test.xml",
            text: "<a>${DIR}/x</a>\n  <port from_env=\"P\"/>\n<b from_env=\"Q\" />",
            xml: true,
        };
        let out = t
            .render(&[
                ("DIR", "/tmp/a&b".into()),
                ("P", "9000".into()),
                ("Q", "<q>".into()),
            ])
            .unwrap();
        assert_eq!(
            out,
            "<a>/tmp/a&amp;b/x</a>\n  <port>9000</port>\n<b>&lt;q&gt;</b>"
        );
        assert_eq!(t.placeholders(), vec!["DIR", "P", "Q"]);
    }

    #[test]
    fn a_missing_value_names_template_and_placeholder() {
        let e = ZOOKEEPER_CFG
            .render(&[("DATA_DIR", "/d".into())])
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("infra/zookeeper/zoo.cfg") && msg.contains("CLIENT_PORT"),
            "{msg}"
        );
    }

    #[test]
    fn every_template_renders_completely() {
        for t in ALL {
            let names = t.placeholders();
            let vars: Vec<(&str, String)> = names
                .iter()
                .map(|n| (n.as_str(), "1".to_string()))
                .collect();
            let out = t.render(&vars).unwrap();
            assert!(
                !out.contains("${") && !out.contains("from_env"),
                "{}: {out}",
                t.path
            );
        }
        assert_eq!(CLICKHOUSE_SHARED.placeholders(), Vec::<String>::new());
        assert_eq!(
            CLICKHOUSE_REPLICA.placeholders(),
            vec![
                "VELOSTREAM_INTERSERVER_HOST",
                "VELOSTREAM_INTERSERVER_PORT",
                "VELOSTREAM_REPLICA",
                "VELOSTREAM_SHARD",
                "VELOSTREAM_ZOOKEEPER_HOST",
                "VELOSTREAM_ZOOKEEPER_PORT"
            ]
        );
    }
}
