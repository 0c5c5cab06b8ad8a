//! A renderer for the part of Helm's template language the chart uses:
//! `{{ .Values.a.b }}`, `{{ .Release.Name }}`, `{{ .Chart.Name }}` and
//! `{{ .Chart.AppVersion }}`; the functions `quote`, `indent N`, `nindent N`
//! and `toYaml`; `{{ if X }}`, `{{ if not X }}` and `{{ end }}`; and `{{-`/`-}}`
//! whitespace trimming. Anything else, and any value the values do not
//! have, is an error: the chart must stay within what this renders.

use serde_norway::Value;

pub struct Context<'a> {
    pub values: &'a Value,
    pub release: &'a str,
    pub chart: &'a Value,
}

/// Renders one template.
pub fn render(template: &str, context: &Context) -> Result<String, String> {
    let mut out = String::new();
    // One entry per open `if`: whether its body is rendered.
    let mut active: Vec<bool> = Vec::new();
    let mut rest = template;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[start + 2..];
        let (after, trim_before) = match after.strip_prefix('-') {
            Some(after) => (after, true),
            None => (after, false),
        };
        if trim_before {
            text = text.trim_end();
        }
        if active.iter().all(|a| *a) {
            out.push_str(text);
        }
        let end = after.find("}}").ok_or("an action without `}}`")?;
        let (action, trim_after) = match after[..end].strip_suffix('-') {
            Some(action) => (action.trim(), true),
            None => (after[..end].trim(), false),
        };
        trim_next = trim_after;
        rest = &after[end + 2..];

        if let Some(condition) = action.strip_prefix("if ") {
            let (negate, expr) = match condition.trim().strip_prefix("not ") {
                Some(expr) => (true, expr.trim()),
                None => (false, condition.trim()),
            };
            let value = lookup(expr, context)?;
            active.push(truthy(&value) != negate);
        } else if action == "end" {
            active.pop().ok_or("`end` without `if`")?;
        } else if active.iter().all(|a| *a) {
            out.push_str(&pipeline(action, context)?);
        }
    }
    if !active.is_empty() {
        return Err("an `if` without `end`".into());
    }
    out.push_str(if trim_next { rest.trim_start() } else { rest });
    Ok(out)
}

fn pipeline(action: &str, context: &Context) -> Result<String, String> {
    let mut stages = action.split('|').map(str::trim);
    let first = stages.next().ok_or("an empty action")?;
    let mut text = match first.strip_prefix("toYaml ") {
        Some(expr) => {
            let yaml = serde_norway::to_string(&lookup(expr.trim(), context)?)
                .map_err(|e| e.to_string())?;
            yaml.trim_end().to_string()
        }
        None => scalar(&lookup(first, context)?, first)?,
    };
    for stage in stages {
        let mut words = stage.split_whitespace();
        match (words.next(), words.next()) {
            (Some("quote"), None) => {
                text = serde_json::to_string(&text).map_err(|e| e.to_string())?;
            }
            (Some(function @ ("indent" | "nindent")), Some(n)) => {
                let n: usize = n.parse().map_err(|_| format!("`{stage}`: not a number"))?;
                let pad = " ".repeat(n);
                let indented: Vec<String> = text.lines().map(|l| format!("{pad}{l}")).collect();
                text = indented.join("\n");
                if function == "nindent" {
                    text.insert(0, '\n');
                }
            }
            _ => return Err(format!("unsupported function `{stage}`")),
        }
    }
    Ok(text)
}

fn lookup(expr: &str, context: &Context) -> Result<Value, String> {
    let path: Vec<&str> = expr
        .strip_prefix('.')
        .ok_or_else(|| format!("unsupported expression `{expr}`"))?
        .split('.')
        .collect();
    let (root, keys) = match path.as_slice() {
        ["Values", keys @ ..] => (context.values, keys),
        ["Release", "Name"] => return Ok(Value::String(context.release.to_string())),
        ["Chart", "Name"] => (context.chart, &["name"][..]),
        ["Chart", "AppVersion"] => (context.chart, &["appVersion"][..]),
        _ => return Err(format!("unsupported expression `{expr}`")),
    };
    let mut value = root;
    for key in keys {
        value = value
            .get(*key)
            .ok_or_else(|| format!("`{expr}`: the values have no `{key}`"))?;
    }
    Ok(value.clone())
}

fn scalar(value: &Value, expr: &str) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!("`{expr}` is not a scalar; use toYaml")),
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Sequence(s) => !s.is_empty(),
        Value::Mapping(m) => !m.is_empty(),
        Value::Tagged(_) => true,
    }
}

#[test]
fn the_renderer_handles_its_subset() {
    let values: Value = serde_norway::from_str(
        "a: {b: 3, s: 'x y', on: true, off: false, list: [{name: N, value: v}]}",
    )
    .unwrap();
    let chart: Value = serde_norway::from_str("name: c\nappVersion: '1.0'").unwrap();
    let context = Context {
        values: &values,
        release: "rel",
        chart: &chart,
    };
    let out = render(
        "n: {{ .Release.Name }}-{{ .Chart.Name }} {{ .Values.a.b }} {{ .Values.a.s | quote }}\n\
         {{- if .Values.a.on }}\non: yes\n{{- end }}\n{{- if .Values.a.off }}\noff: yes\n{{- end }}\n\
         {{- if not .Values.a.off }}\nnot-off: yes\n{{- end }}\nenv:{{ toYaml .Values.a.list | nindent 2 }}\n",
        &context,
    )
    .unwrap();
    assert_eq!(
        out,
        "n: rel-c 3 \"x y\"\non: yes\nnot-off: yes\nenv:\n  - name: N\n    value: v\n"
    );
    assert!(render("{{ .Values.a.missing }}", &context).is_err());
    assert!(render("{{ include \"x\" . }}", &context).is_err());
    assert!(render("{{ if .Values.a.on }}", &context).is_err());
}
