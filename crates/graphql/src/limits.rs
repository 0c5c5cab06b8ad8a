//! What one GraphQL request may ask for: how deep, how costly, how many
//! aliases and root fields, and whether it may introspect the schema. A
//! request past a limit is refused before any resolver runs, with its own
//! `extensions.code` and `extensions.limit`.
//!
//! Checks run in two places. Before parsing, the query text's bracket nesting
//! is bounded, so that no input makes the parser recurse without end. After
//! parsing, one walk over the document (each fragment measured once,
//! however often it is spread) bounds nesting, the number of fields once
//! fragments are expanded (a fragment spread twice in a fragment spread twice
//! ... grows exponentially, and async-graphql's own validation would expand
//! it), aliases and root fields. After validation, async-graphql's complexity
//! (where a page of `first` items costs `first` times an item, see
//! [`page_cost`]) is held to its limit.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextValidation,
};
use async_graphql::parser::types::{
    ExecutableDocument, Field, Selection, SelectionSet, VariableDefinition,
};
use async_graphql::{
    Positioned, Request, ServerError, ServerResult, ValidationResult, VisitorContext,
};

use crate::error::{PARSE_FAILED, VALIDATION_FAILED};

/// Fields nested deeper than `max_depth`.
pub const QUERY_TOO_DEEP: &str = "QUERY_TOO_DEEP";
/// Complexity (or fields after fragment expansion) above `max_complexity`.
pub const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
/// More aliases than `max_aliases` in the operation.
pub const TOO_MANY_ALIASES: &str = "TOO_MANY_ALIASES";
/// More root fields than `max_root_fields` in the operation.
pub const TOO_MANY_ROOT_FIELDS: &str = "TOO_MANY_ROOT_FIELDS";
/// `__schema` or `__type` asked of a gateway with introspection off.
pub const INTROSPECTION_DISABLED: &str = "INTROSPECTION_DISABLED";

/// The page size a connection field's complexity assumes when the query gives
/// no `first`: the gateway's default `default_page_size`.
const ASSUMED_PAGE_SIZE: usize = 20;

/// What a field that looks one more record up at a platform (an investment's
/// or an offer's `loan`) costs beyond its selections.
pub(crate) const LOOKUP_COST: usize = 5;

/// Limits on one request (one operation; a batch is limited per request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryLimits {
    /// Fields nested deeper than this are refused (`{ a { b } }` is 2 deep).
    pub max_depth: usize,
    /// The highest complexity accepted: each field costs 1 plus its
    /// selections, a connection costs `first` (20 when not given) times an
    /// item, an investment's or offer's `loan` (one more upstream lookup
    /// each) 5 more.
    /// The number of fields once fragments are expanded is held to it too.
    pub max_complexity: usize,
    /// The most aliased fields in one operation (fragments expanded).
    pub max_aliases: usize,
    /// The most fields at the root of one operation (fragments expanded).
    pub max_root_fields: usize,
    /// Whether `__schema` and `__type` may be asked (`__typename` always may).
    pub introspection: bool,
}

impl Default for QueryLimits {
    /// Generous for every query of the schema and for GraphiQL's
    /// introspection query; introspection itself is off.
    fn default() -> Self {
        QueryLimits {
            max_depth: 16,
            max_complexity: 5_000,
            max_aliases: 20,
            max_root_fields: 10,
            introspection: false,
        }
    }
}

impl QueryLimits {
    /// Selection sets nested deeper than this are refused (fragments and
    /// inline fragments count as a level, as in async-graphql's recursion
    /// check, which is set to the same value).
    pub(crate) fn max_nesting(&self) -> usize {
        self.max_depth.saturating_mul(2).saturating_add(2)
    }

    /// Brackets (`{`, `(`, `[`) nested deeper than this in the query text are
    /// refused before parsing: room for the selections and for arguments.
    fn max_text_nesting(&self) -> usize {
        self.max_nesting().saturating_add(32)
    }
}

/// The complexity of a connection field: `first` items (the assumed default
/// page when not given; negative counts as none), each costing `child`.
///
/// Used as `#[graphql(complexity = "crate::limits::page_cost(__ctx,
/// __variables_definition, __field, child_complexity)")]`: naming `first`
/// there instead would make async-graphql report a bad `first` twice (once
/// more while computing the complexity), so it is read here, leniently.
pub(crate) fn page_cost(
    ctx: &VisitorContext<'_>,
    variables: &[Positioned<VariableDefinition>],
    field: &Field,
    child: usize,
) -> usize {
    let first = ctx
        .param_value::<Option<i32>>(variables, field, "first", None)
        .ok()
        .flatten();
    items_cost(first, child)
}

fn items_cost(first: Option<i32>, child: usize) -> usize {
    let items = first.map_or(ASSUMED_PAGE_SIZE, |n| usize::try_from(n).unwrap_or(0));
    items.saturating_mul(child).saturating_add(1)
}

/// The schema extension enforcing [`QueryLimits`].
pub(crate) struct Limits(pub Arc<QueryLimits>);

impl ExtensionFactory for Limits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Limits(self.0.clone()))
    }
}

#[async_trait::async_trait]
impl Extension for Limits {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let limits = &self.0;
        if text_nesting(&request.query) > limits.max_text_nesting() {
            return Err(refusal(
                QUERY_TOO_DEEP,
                format!(
                    "the query nests brackets more than {} levels deep",
                    limits.max_text_nesting()
                ),
                limits.max_depth,
            ));
        }
        // Parsed here (and handed on, so not parsed twice) to measure it
        // before async-graphql expands its fragments.
        let document =
            async_graphql::parser::parse_query(&request.query).map_err(|error| match error {
                async_graphql::parser::Error::RecursionLimitExceeded => refusal(
                    QUERY_TOO_DEEP,
                    "the query's selections are nested too deep to read".to_string(),
                    limits.max_depth,
                ),
                error => crate::error::with_code(error.into(), PARSE_FAILED),
            })?;
        check_document(&document, request.operation_name.as_deref(), limits)?;
        request.set_parsed_query(document);
        next.run(ctx, request).await
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        if result.complexity > self.0.max_complexity {
            return Err(vec![refusal(
                QUERY_TOO_COMPLEX,
                format!(
                    "the query's complexity is {}, above the gateway's limit; ask for smaller pages (`first`) or fewer fields",
                    result.complexity
                ),
                self.0.max_complexity,
            )]);
        }
        Ok(result)
    }
}

fn refusal(code: &str, message: String, limit: usize) -> ServerError {
    let mut error = ServerError::new(format!("{message} (limit {limit})"), None);
    let extensions = error.extensions.get_or_insert_with(Default::default);
    extensions.set("code", code);
    extensions.set("limit", limit as u64);
    error
}

/// The deepest nesting of `{`, `(` and `[` outside strings and comments.
fn text_nesting(query: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut chars = query.chars();
    while let Some(c) = chars.next() {
        match c {
            '{' | '(' | '[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            '}' | ')' | ']' => depth = depth.saturating_sub(1),
            '#' => {
                // A comment runs to the end of the line.
                for c in chars.by_ref() {
                    if c == '\n' || c == '\r' {
                        break;
                    }
                }
            }
            '"' => {
                // Strings (block strings are a run of them for this purpose).
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    deepest
}

/// What a selection set asks for once its fragments are expanded.
#[derive(Debug, Clone, Copy, Default)]
struct Shape {
    /// Fields, each spread of a fragment counting its fields again.
    fields: u64,
    /// Aliased fields among them.
    aliases: u64,
    /// The longest chain of nested fields (a leaf is 1).
    depth: usize,
    /// Selection sets nested inside (fragments and inline fragments count).
    nesting: usize,
    /// Fields at this level, through fragments.
    top_fields: u64,
    /// Whether `__schema` or `__type` is among them.
    top_introspection: bool,
}

impl Shape {
    /// Adds `inner`, selected at this level (a fragment or inline fragment).
    fn merge_level(&mut self, inner: &Shape) {
        self.fields = self.fields.saturating_add(inner.fields);
        self.aliases = self.aliases.saturating_add(inner.aliases);
        self.depth = self.depth.max(inner.depth);
        self.nesting = self.nesting.max(inner.nesting.saturating_add(1));
        self.top_fields = self.top_fields.saturating_add(inner.top_fields);
        self.top_introspection |= inner.top_introspection;
    }
}

enum Fragment {
    Measuring,
    Measured(Shape),
}

/// Measures selection sets, each fragment once.
struct Walk<'a> {
    document: &'a ExecutableDocument,
    max_nesting: usize,
    fragments: HashMap<&'a str, Fragment>,
}

enum Refused {
    TooDeep,
    Cycle(String),
}

impl<'a> Walk<'a> {
    /// The shape of `set`, found `nesting` selection sets below the operation.
    fn selection_set(&mut self, set: &'a SelectionSet, nesting: usize) -> Result<Shape, Refused> {
        if nesting > self.max_nesting {
            return Err(Refused::TooDeep);
        }
        let mut shape = Shape::default();
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let mut inner = Shape::default();
                    if !field.selection_set.node.items.is_empty() {
                        inner = self.selection_set(&field.selection_set.node, nesting + 1)?;
                        shape.nesting = shape.nesting.max(inner.nesting.saturating_add(1));
                    }
                    shape.fields = shape.fields.saturating_add(inner.fields).saturating_add(1);
                    shape.aliases = shape
                        .aliases
                        .saturating_add(inner.aliases)
                        .saturating_add(u64::from(field.alias.is_some()));
                    shape.depth = shape.depth.max(inner.depth.saturating_add(1));
                    shape.top_fields = shape.top_fields.saturating_add(1);
                    shape.top_introspection |=
                        matches!(field.name.node.as_str(), "__schema" | "__type");
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if let Some(inner) = self.fragment(name, nesting + 1)? {
                        shape.merge_level(&inner);
                    }
                }
                Selection::InlineFragment(inline) => {
                    let inner = self.selection_set(&inline.node.selection_set.node, nesting + 1)?;
                    shape.merge_level(&inner);
                }
            }
        }
        Ok(shape)
    }

    /// The shape of fragment `name` spread `nesting` levels down; `None` for
    /// an unknown fragment (validation reports it).
    fn fragment(&mut self, name: &str, nesting: usize) -> Result<Option<Shape>, Refused> {
        let Some((key, definition)) = self.document.fragments.get_key_value(name) else {
            return Ok(None);
        };
        let shape = match self.fragments.get(name) {
            Some(Fragment::Measured(shape)) => *shape,
            Some(Fragment::Measuring) => return Err(Refused::Cycle(name.to_string())),
            None => {
                self.fragments.insert(key.as_str(), Fragment::Measuring);
                let shape = self.selection_set(&definition.node.selection_set.node, nesting)?;
                self.fragments
                    .insert(key.as_str(), Fragment::Measured(shape));
                shape
            }
        };
        if nesting.saturating_add(shape.nesting) > self.max_nesting {
            return Err(Refused::TooDeep);
        }
        Ok(Some(shape))
    }
}

/// Refuses a document past `limits`; `operation` is the operation name the
/// request asks to run.
fn check_document(
    document: &ExecutableDocument,
    operation: Option<&str>,
    limits: &QueryLimits,
) -> ServerResult<()> {
    let mut walk = Walk {
        document,
        max_nesting: limits.max_nesting(),
        fragments: HashMap::new(),
    };
    let too_deep = || {
        refusal(
            QUERY_TOO_DEEP,
            "the query nests its selections too deep (fragments count as a level)".to_string(),
            limits.max_depth,
        )
    };
    let refused = |reason: Refused| match reason {
        Refused::TooDeep => too_deep(),
        Refused::Cycle(name) => crate::error::with_code(
            ServerError::new(format!("fragment `{name}` spreads itself"), None),
            VALIDATION_FAILED,
        ),
    };
    // Every operation and fragment, as async-graphql validates them all.
    let mut total = 0u64;
    let mut operations: Vec<(Option<&str>, Shape)> = Vec::new();
    for (name, definition) in document.operations.iter() {
        let shape = walk
            .selection_set(&definition.node.selection_set.node, 0)
            .map_err(refused)?;
        total = total.saturating_add(shape.fields);
        operations.push((name.map(|n| n.as_str()), shape));
    }
    for name in document.fragments.keys() {
        if let Some(shape) = walk.fragment(name, 1).map_err(refused)? {
            total = total.saturating_add(shape.fields);
        }
    }
    if operations
        .iter()
        .any(|(_, shape)| shape.depth > limits.max_depth)
    {
        let deepest = operations.iter().map(|(_, s)| s.depth).max().unwrap_or(0);
        return Err(refusal(
            QUERY_TOO_DEEP,
            format!("the query nests fields {deepest} levels deep"),
            limits.max_depth,
        ));
    }
    if total > limits.max_complexity as u64 {
        return Err(refusal(
            QUERY_TOO_COMPLEX,
            format!("the query selects {total} fields once its fragments are expanded"),
            limits.max_complexity,
        ));
    }
    // The operation that runs; all of them when the request does not say
    // which (async-graphql refuses an ambiguous request later).
    let running: Vec<&Shape> = operations
        .iter()
        .filter(|(name, _)| operation.is_none() || *name == operation)
        .map(|(_, shape)| shape)
        .collect();
    let most = |measure: fn(&Shape) -> u64| running.iter().map(|s| measure(s)).max().unwrap_or(0);
    if !limits.introspection && running.iter().any(|shape| shape.top_introspection) {
        return Err(crate::error::with_code(
            ServerError::new(
                "introspection (`__schema`, `__type`) is disabled on this gateway; the schema is published as `schema.graphql`",
                None,
            ),
            INTROSPECTION_DISABLED,
        ));
    }
    let root_fields = most(|shape| shape.top_fields);
    if root_fields > limits.max_root_fields as u64 {
        return Err(refusal(
            TOO_MANY_ROOT_FIELDS,
            format!(
                "the operation selects {root_fields} root fields; split it into several requests"
            ),
            limits.max_root_fields,
        ));
    }
    let aliases = most(|shape| shape.aliases);
    if aliases > limits.max_aliases as u64 {
        return Err(refusal(
            TOO_MANY_ALIASES,
            format!("the operation uses {aliases} aliases"),
            limits.max_aliases,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
