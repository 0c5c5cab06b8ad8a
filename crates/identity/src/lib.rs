//! Who the gateway acts for at each platform: the OAuth connect flow that
//! links a principal's account, and the token source that keeps its tokens
//! fresh (refreshed once, however many requests need it).

mod connections;
mod tokens;

pub use connections::{Connected, Connections};
pub use tokens::StoreTokens;
