//! Revocations through the admin client reach the cache at once: no TTL wait.

use crate::support::*;

#[actix_web::test]
async fn logout_refuses_the_token_on_the_next_request() {
    let emu = emulator();
    let kit = kit(&emu);
    let app = protected_app(&kit);
    let user = login(&emu, "+15557654321").await;
    let other_session = crate::support::login(&emu, "+15557654321").await;
    assert_eq!(
        get_with(&app.url("/me"), Some(&user.token)).await.status(),
        200
    );
    assert_eq!(
        get_with(&app.url("/me"), Some(&other_session.token))
            .await
            .status(),
        200
    );

    let res = http()
        .post(app.url("/logout"))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(calls(&emu, "logout").await, 1);

    let me_calls = calls(&emu, "me").await;
    assert_eq!(
        get_with(&app.url("/me"), Some(&user.token)).await.status(),
        401
    );
    assert_eq!(
        calls(&emu, "me").await,
        me_calls,
        "refused from the cache, at once"
    );
    // The same account's other session is untouched.
    assert_eq!(
        get_with(&app.url("/me"), Some(&other_session.token))
            .await
            .status(),
        200
    );
}

#[actix_web::test]
async fn invalidate_all_and_delete_refuse_every_token_of_the_account() {
    for delete in [false, true] {
        let emu = emulator();
        let kit = kit(&emu);
        let app = protected_app(&kit);
        let a = login(&emu, "+4915112345678").await;
        let b = login(&emu, "+4915112345678").await;
        let bystander = login(&emu, "+4915112345679").await;
        assert_eq!(a.account_id, b.account_id);
        for t in [&a.token, &b.token, &bystander.token] {
            assert_eq!(get_with(&app.url("/me"), Some(t)).await.status(), 200);
        }
        if delete {
            kit.admin().delete_account(&a.account_id).await.unwrap();
            assert_eq!(calls(&emu, "delete").await, 1);
        } else {
            kit.admin()
                .invalidate_all_tokens(&a.account_id)
                .await
                .unwrap();
            assert_eq!(calls(&emu, "invalidate_all_tokens").await, 1);
        }
        for t in [&a.token, &b.token] {
            assert_eq!(
                get_with(&app.url("/me"), Some(t)).await.status(),
                401,
                "delete={delete}"
            );
        }
        assert_eq!(
            get_with(&app.url("/me"), Some(&bystander.token))
                .await
                .status(),
            200
        );
    }
}

#[actix_web::test]
async fn code_exchange_through_the_admin_client() {
    let emu = emulator();
    let kit = kit(&emu);
    let user = login(&emu, "+15550001111").await;
    let exchange = kit.admin().exchange_code(&user.code).await.unwrap();
    assert_eq!(exchange.id, user.account_id);
    assert_eq!(exchange.token_refresh_interval_sec, 2_592_000);
    let account = kit
        .client()
        .me(exchange.access_token.expose_secret())
        .await
        .unwrap();
    assert_eq!(account.id, user.account_id);
    let again = kit.admin().exchange_code(&user.code).await.unwrap_err();
    assert!(again.is_invalid_code(), "{again}");
}
