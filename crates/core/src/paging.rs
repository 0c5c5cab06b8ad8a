//! Offset windows over page-numbered platform APIs.

use std::future::Future;

use futures::future::try_join_all;

use crate::error::Result;
use crate::provider::Slice;

/// Fetches the window `[offset, offset + limit)` from an API that pages by
/// number with a fixed `page_size`, asking for every page it touches at once.
///
/// `fetch_page(n)` fetches the 0-based page `n` of `page_size` items (the
/// adapter adds its platform's own numbering base). The throttle below paces
/// the concurrent requests, so asking for them together costs nothing extra.
pub async fn fetch_window<T, F, Fut>(
    offset: u64,
    limit: u32,
    page_size: u32,
    fetch_page: F,
) -> Result<Slice<T>>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<Slice<T>>>,
{
    if limit == 0 {
        // Still one call, to learn the total; a zero-sized page is not asked for.
        let first = fetch_page(offset / u64::from(page_size.max(1))).await?;
        return Ok(Slice {
            items: Vec::new(),
            total: first.total,
        });
    }
    let page_size = u64::from(page_size.max(1));
    let first_page = offset / page_size;
    let last_page = (offset + u64::from(limit) - 1) / page_size;
    let pages = try_join_all((first_page..=last_page).map(&fetch_page)).await?;
    let total = pages.iter().find_map(|p| p.total);
    let skip = usize::try_from(offset - first_page * page_size).unwrap_or(usize::MAX);
    let items = pages
        .into_iter()
        .flat_map(|p| p.items)
        .skip(skip)
        .take(limit as usize)
        .collect();
    Ok(Slice { items, total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    async fn window(offset: u64, limit: u32, page_size: u32) -> (Vec<u64>, Vec<u64>) {
        let data: Vec<u64> = (0..95).collect();
        let asked = Mutex::new(Vec::new());
        let slice = fetch_window(offset, limit, page_size, |page| {
            asked.lock().unwrap().push(page);
            let start = (page * u64::from(page_size)) as usize;
            let items = data
                .iter()
                .skip(start)
                .take(page_size as usize)
                .copied()
                .collect();
            async move {
                Ok(Slice {
                    items,
                    total: Some(95),
                })
            }
        })
        .await
        .unwrap();
        let mut asked = asked.into_inner().unwrap();
        asked.sort();
        (slice.items, asked)
    }

    #[tokio::test]
    async fn windows_cross_page_boundaries() {
        assert_eq!(window(0, 5, 10).await, ((0..5).collect(), vec![0]));
        assert_eq!(window(8, 5, 10).await, ((8..13).collect(), vec![0, 1]));
        assert_eq!(
            window(25, 30, 10).await,
            ((25..55).collect(), vec![2, 3, 4, 5])
        );
        assert_eq!(window(90, 10, 10).await, ((90..95).collect(), vec![9]));
        assert_eq!(window(200, 10, 10).await, (vec![], vec![20]));
    }
}
