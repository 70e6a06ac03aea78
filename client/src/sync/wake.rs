//! Push registration (spec §16): the app's mobile push token, registered at every relay of
//! the group, so a relay can wake this device (a silent push) when a message arrives while
//! it is offline. The wake carries nothing of the group; the app pulls.

use zerok_core::sync::{
    Message,
    message::{PushPlatform, RegisterPush, UnregisterPush},
};

use super::SyncClient;
use crate::Error;

impl SyncClient {
    /// Registers `token` (APNs or FCM; `app_id` the APNs bundle id) at every connected
    /// relay, replacing this device's last. Succeeds when at least one relay took it.
    ///
    /// # Errors
    /// Every relay refused it (`INVALID_PUSH_TOKEN` when a relay has no push gateway or the
    /// token is malformed, `NOT_MEMBER`), or none answered.
    pub async fn register_push_token(
        &mut self,
        token: &str,
        platform: PushPlatform,
        app_id: Option<&str>,
    ) -> Result<(), Error> {
        let msg = Message::RegisterPush(RegisterPush {
            token: token.to_string(),
            platform,
            app_id: app_id.map(str::to_string),
        });
        self.at_every_relay(&msg).await
    }

    /// Drops this device's token at every connected relay (`reason`: `user-disabled`,
    /// `token-expired`, `app-uninstalled`, or the app's own words).
    ///
    /// # Errors
    /// As [`SyncClient::register_push_token`].
    pub async fn unregister_push_token(&mut self, reason: &str) -> Result<(), Error> {
        self.at_every_relay(&Message::UnregisterPush(UnregisterPush { reason: reason.to_string() })).await
    }

    /// Sends `msg` to every relay; OK when one answered OK, else the last error.
    pub(super) async fn at_every_relay(&mut self, msg: &Message) -> Result<(), Error> {
        let mut result = Err(Error::Unreachable("no relay connected".into()));
        for i in 0..self.conns.len() {
            let failed = match self.request(i, msg).await {
                Ok(Message::Ok) => {
                    result = Ok(());
                    continue;
                }
                Ok(other) => Error::unexpected(&other),
                Err(e) => e,
            };
            if result.is_err() {
                result = Err(failed);
            }
        }
        result
    }
}
