//! `GET /v1/transfers`: which part of a unified filter goes upstream, and
//! reading an offset window of the list whatever paging the server does.
//!
//! Filters: the document has `filter[status]` (one status) and
//! `filter[from_date]` / `filter[to_date]` ("on or after", "on or before":
//! inclusive). A filter that fits them exactly is pushed whole and the
//! server's total is trusted; several statuses are not pushed at all, and a
//! strict (`gt`/`lt`) bound is pushed as the inclusive one around it. In
//! both cases the server may answer more than matches, the aggregator's local
//! re-check removes the rest, and no total is reported.
//!
//! Paging: the document is silent. We ask JSON:API's `page[number]` (from 1)
//! and `page[size]`, and read the answer for what the server really did:
//! honoured them (the usual case); paged with a size of its own (it says so
//! in `meta.page`, or its page is short and `links.next` follows); or ignored
//! them and answered everything, or pages of its own reached by `links.next`.

use std::collections::HashSet;
use std::future::Future;

use chrono::{DateTime, SecondsFormat, Utc};
use finmesh_core::Result;
use finmesh_core::query::{Bounds, TransferFilter};

use crate::wire::status_name;

/// The `filter[...]` parameters for a unified filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pushed {
    pub params: Vec<(&'static str, String)>,
    /// The server evaluates the whole filter: its answer holds only matches
    /// and its total counts them.
    pub exact: bool,
    /// Nothing can match (an empty status list): no request is needed.
    pub empty: bool,
}

pub(crate) fn pushdown(filter: &TransferFilter) -> Pushed {
    let mut params = Vec::new();
    let mut exact = true;
    if let Some(statuses) = &filter.statuses {
        let distinct: HashSet<_> = statuses.iter().collect();
        if distinct.is_empty() {
            return Pushed {
                params,
                exact: true,
                empty: true,
            };
        }
        match distinct.into_iter().map(status_name).collect::<Vec<_>>()[..] {
            [Some(name)] => params.push(("filter[status]", name.to_string())),
            // Several statuses (Bongloy filters by one), or one the document
            // does not name: listed unfiltered, checked locally.
            _ => exact = false,
        }
    }
    if let Some(bounds) = &filter.created_at {
        let (from, from_exact) = lower(bounds);
        let (to, to_exact) = upper(bounds);
        if let Some(from) = from {
            params.push(("filter[from_date]", iso8601(from)));
        }
        if let Some(to) = to {
            params.push(("filter[to_date]", iso8601(to)));
        }
        exact &= from_exact && to_exact;
    }
    Pushed {
        params,
        exact,
        empty: false,
    }
}

/// The tightest lower bound, and whether sending it as the inclusive
/// `from_date` is exact (it is not for a strict bound that decides).
fn lower(bounds: &Bounds<DateTime<Utc>>) -> (Option<DateTime<Utc>>, bool) {
    match (bounds.gte, bounds.gt) {
        (Some(gte), Some(gt)) if gte > gt => (Some(gte), true),
        (_, Some(gt)) => (Some(gt), false),
        (Some(gte), None) => (Some(gte), true),
        (None, None) => (None, true),
    }
}

fn upper(bounds: &Bounds<DateTime<Utc>>) -> (Option<DateTime<Utc>>, bool) {
    match (bounds.lte, bounds.lt) {
        (Some(lte), Some(lt)) if lte < lt => (Some(lte), true),
        (_, Some(lt)) => (Some(lt), false),
        (Some(lte), None) => (Some(lte), true),
        (None, None) => (None, true),
    }
}

/// ISO 8601 in UTC with as many fractional digits as the value has (none
/// for whole seconds, as in the document's example), so that an inclusive
/// bound taken from an answered time finds that very record.
fn iso8601(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// What to ask for one page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PageRequest {
    /// `page[number]` (from 1) and `page[size]`.
    Numbered { number: u64, size: u64 },
    /// The query of a `links.next` the server gave, checked to point at the
    /// same endpoint.
    Link(Vec<(String, String)>),
}

/// One answered page.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PageAnswer<T> {
    pub items: Vec<T>,
    /// The query of `links.next`, when it is usable.
    pub next: Option<Vec<(String, String)>>,
    /// `meta`'s total, if any.
    pub total: Option<u64>,
    /// `meta.page`'s number and size, if any.
    pub page: Option<(u64, u64)>,
}

/// How the rest of the list is reached once the first answer is understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Page numbers with this size work.
    Numbered(u64),
    /// Only `links.next` goes on.
    Links,
}

/// Reads `[offset, offset + limit)` of the list, `size` records per page
/// asked, with `fetch` making each request. Returns the records and the
/// first answer's total.
pub(crate) async fn read_window<T, F, Fut>(
    offset: u64,
    limit: u32,
    size: u32,
    fetch: F,
) -> Result<(Vec<T>, Option<u64>)>
where
    T: PartialEq,
    F: Fn(PageRequest) -> Fut,
    Fut: Future<Output = Result<PageAnswer<T>>>,
{
    let size = u64::from(size.max(1));
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let number = offset / size + 1;
    let mut answer = fetch(PageRequest::Numbered { number, size }).await?;
    let total = answer.total;
    if limit == 0 {
        return Ok((Vec::new(), total));
    }
    let first_page = PageRequest::Numbered { number: 1, size };
    let len = answer.items.len() as u64;

    // Where the answer starts in the whole list, and how to go on.
    let (mut index, mode) = if len > size {
        // Our size was ignored: everything, or pages of the server's own
        // size. Page numbers mean nothing then; start over from the top.
        if number > 1 {
            answer = fetch(first_page).await?;
        }
        (0, Mode::Links)
    } else if let Some((served, own)) = answer.page.filter(|&(n, s)| s != size || n != number) {
        // The server pages with a size of its own (a lower maximum) and says so.
        let wanted = offset / own + 1;
        if wanted != served {
            answer = fetch(PageRequest::Numbered {
                number: wanted,
                size: own,
            })
            .await?;
        }
        ((wanted - 1) * own, Mode::Numbered(own))
    } else if len < size && answer.next.is_some() {
        // A short page with more to come and no `meta.page`: the server's
        // size is unknown; walk its links from the top.
        if number > 1 {
            answer = fetch(first_page).await?;
        }
        (0, Mode::Links)
    } else if number > 1 && answer.page.is_none() && len > 0 {
        // Nothing says this is page `number`: a server that ignores paging
        // and has at most `size` records answers the same to every page.
        // Page 1 tells: the same first record means paging is ignored.
        let top = fetch(first_page).await?;
        if top.items.first() == answer.items.first() {
            answer = top;
            (0, Mode::Links)
        } else {
            ((number - 1) * size, Mode::Numbered(size))
        }
    } else {
        ((number - 1) * size, Mode::Numbered(size))
    };

    let mut items = Vec::new();
    loop {
        let count = answer.items.len() as u64;
        let next = answer.next.take();
        for item in answer.items {
            if index >= offset && items.len() < limit {
                items.push(item);
            }
            index += 1;
        }
        if items.len() >= limit || count == 0 || total.is_some_and(|t| index >= t) {
            break;
        }
        let request = match mode {
            Mode::Numbered(own) if count >= own => PageRequest::Numbered {
                number: index / own + 1,
                size: own,
            },
            // A short numbered page is the last one.
            Mode::Numbered(_) => break,
            Mode::Links => match next {
                Some(query) => PageRequest::Link(query),
                None => break,
            },
        };
        answer = fetch(request).await?;
    }
    Ok((items, total))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use finmesh_core::model::TransferStatus;
    use std::sync::Mutex;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn one_status_and_inclusive_bounds_are_pushed_exactly() {
        let pushed = pushdown(&TransferFilter {
            statuses: Some(vec![TransferStatus::Successful, TransferStatus::Successful]),
            created_at: Some(Bounds {
                gte: Some(at("2020-01-01T00:00:00Z")),
                lte: Some(at("2020-01-01T11:00:00.123Z")),
                ..Default::default()
            }),
        });
        assert!(pushed.exact && !pushed.empty);
        assert_eq!(
            pushed.params,
            vec![
                ("filter[status]", "successful".to_string()),
                ("filter[from_date]", "2020-01-01T00:00:00Z".to_string()),
                ("filter[to_date]", "2020-01-01T11:00:00.123Z".to_string()),
            ]
        );
    }

    #[test]
    fn what_bongloy_cannot_say_is_loosened() {
        let several = pushdown(&TransferFilter {
            statuses: Some(vec![TransferStatus::Pending, TransferStatus::Failed]),
            created_at: None,
        });
        assert!(!several.exact);
        assert!(several.params.is_empty());
        let other = pushdown(&TransferFilter {
            statuses: Some(vec![TransferStatus::Other("settling".into())]),
            created_at: None,
        });
        assert!(!other.exact && other.params.is_empty());
        let strict = pushdown(&TransferFilter {
            statuses: None,
            created_at: Some(Bounds {
                gt: Some(at("2020-01-01T00:00:00Z")),
                lt: Some(at("2020-01-02T00:00:00Z")),
                ..Default::default()
            }),
        });
        assert!(!strict.exact);
        assert_eq!(strict.params.len(), 2);
        // A strict bound made redundant by a tighter inclusive one stays exact.
        let implied = pushdown(&TransferFilter {
            statuses: None,
            created_at: Some(Bounds {
                gt: Some(at("2020-01-01T00:00:00Z")),
                gte: Some(at("2020-01-01T00:00:01Z")),
                ..Default::default()
            }),
        });
        assert!(implied.exact);
        assert_eq!(
            implied.params,
            vec![("filter[from_date]", "2020-01-01T00:00:01Z".to_string())]
        );
        let none = pushdown(&TransferFilter {
            statuses: Some(vec![]),
            created_at: None,
        });
        assert!(none.empty);
    }

    /// A list of 0..n served by a simulated server of some paging behaviour.
    #[derive(Clone, Copy)]
    enum Server {
        /// Honours page[number] and page[size], up to a maximum size, and says so in meta.
        Honours { max: u64, meta: bool, links: bool },
        /// Ignores paging: everything at once.
        Everything,
        /// Ignores our paging; pages of its own size, linked.
        OwnPages { size: u64 },
    }

    async fn read(server: Server, n: u64, offset: u64, limit: u32, size: u32) -> (Vec<u64>, usize) {
        let calls = Mutex::new(0usize);
        let (items, _) = read_window(offset, limit, size, |request| {
            *calls.lock().unwrap() += 1;
            let page = |number: u64, size: u64, meta: bool, links: bool| {
                let start = (number - 1) * size;
                let items: Vec<u64> = (start..n).take(size as usize).collect();
                let more = start + size < n;
                PageAnswer {
                    items,
                    next: (links && more).then(|| {
                        vec![
                            ("page[number]".to_string(), (number + 1).to_string()),
                            ("page[size]".to_string(), size.to_string()),
                        ]
                    }),
                    total: meta.then_some(n),
                    page: meta.then_some((number, size)),
                }
            };
            let answer = match (server, request) {
                (Server::Honours { max, meta, links }, PageRequest::Numbered { number, size }) => {
                    page(number, size.min(max), meta, links)
                }
                (Server::Honours { meta, links, .. }, PageRequest::Link(query)) => {
                    let get = |k: &str| {
                        query
                            .iter()
                            .find(|(n, _)| n == k)
                            .unwrap()
                            .1
                            .parse()
                            .unwrap()
                    };
                    page(get("page[number]"), get("page[size]"), meta, links)
                }
                (Server::Everything, _) => PageAnswer {
                    items: (0..n).collect(),
                    next: None,
                    total: None,
                    page: None,
                },
                (Server::OwnPages { size }, PageRequest::Numbered { .. }) => {
                    page(1, size, false, true)
                }
                (Server::OwnPages { .. }, PageRequest::Link(query)) => {
                    let get = |k: &str| {
                        query
                            .iter()
                            .find(|(n, _)| n == k)
                            .unwrap()
                            .1
                            .parse()
                            .unwrap()
                    };
                    page(get("page[number]"), get("page[size]"), false, true)
                }
            };
            async move { Ok(answer) }
        })
        .await
        .unwrap();
        (items, calls.into_inner().unwrap())
    }

    #[tokio::test]
    async fn every_paging_behaviour_gives_the_same_windows() {
        let servers = [
            Server::Honours {
                max: 100,
                meta: true,
                links: true,
            },
            Server::Honours {
                max: 100,
                meta: false,
                links: false,
            },
            Server::Honours {
                max: 4,
                meta: true,
                links: true,
            },
            Server::Honours {
                max: 4,
                meta: false,
                links: true,
            },
            Server::Everything,
            Server::OwnPages { size: 7 },
            Server::OwnPages { size: 3 },
        ];
        for (index, server) in servers.into_iter().enumerate() {
            for (offset, limit) in [
                (0, 5),
                (3, 10),
                (10, 10),
                (20, 10),
                (37, 5),
                (0, 100),
                (44, 3),
                (50, 5),
            ] {
                let (items, calls) = read(server, 45, offset, limit, 10).await;
                let expected: Vec<u64> = (offset..45).take(limit as usize).collect();
                assert_eq!(
                    items, expected,
                    "server #{index}, window ({offset}, {limit})"
                );
                assert!(calls <= 60, "server #{index}: {calls} calls");
            }
        }
    }

    #[tokio::test]
    async fn an_honouring_server_is_asked_only_the_pages_the_window_spans() {
        let server = Server::Honours {
            max: 100,
            meta: true,
            links: true,
        };
        assert_eq!(read(server, 45, 0, 5, 10).await.1, 1);
        assert_eq!(read(server, 45, 8, 5, 10).await.1, 2);
        assert_eq!(read(server, 45, 40, 10, 10).await.1, 1, "the total ends it");
        let everything = Server::Everything;
        assert_eq!(
            read(everything, 45, 30, 10, 10).await.1,
            2,
            "one try, then the top"
        );
        // At most one page of records, paging ignored: every page looks like page 1.
        for (offset, limit) in [(0, 5), (5, 5), (10, 5), (12, 3)] {
            let (items, _) = read(everything, 10, offset, limit, 10).await;
            let expected: Vec<u64> = (offset..10).take(limit as usize).collect();
            assert_eq!(items, expected, "window ({offset}, {limit})");
        }
    }
}
