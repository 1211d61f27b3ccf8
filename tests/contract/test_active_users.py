"""``list_active_users`` (default GET /users) on every adapter: closed users out, pages and total agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ecpay_lambda.wallet.ids import new_user_id
from ecpay_lambda.wallet.models import User, UserStatus
from ecpay_lambda.wallet.port import WalletStore


def test_active_users_leave_out_closed_ones(store: WalletStore) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    users = []
    for i in range(5):
        moment = start + timedelta(seconds=i)
        user = User(
            user_id=new_user_id(),
            username=f"active-{i}-{new_user_id()[-6:]}",
            email=f"u{i}@example.com",
            balance=0,
            held=0,
            status=UserStatus.ACTIVE,
            open_transactions=0,
            created_at=moment,
            updated_at=moment,
        )
        store.create_user(user)
        users.append(user)
    store.close_user(users[1].user_id, start + timedelta(minutes=1))
    store.close_user(users[3].user_id, start + timedelta(minutes=1))
    expected = [users[0].user_id, users[2].user_id, users[4].user_id]

    whole = store.list_active_users(page_size=10)
    assert [u.user_id for u in whole.items] == expected and whole.total == 3
    assert all(u.status is UserStatus.ACTIVE for u in whole.items)
    assert store.list_users(page_size=10).total == 5  # the full list is unchanged

    paged = [store.list_active_users(page=p, page_size=2) for p in (1, 2)]
    assert [u.user_id for page in paged for u in page.items] == expected
    assert paged[1].next_cursor is None

    seen: list[str] = []
    cursor = None
    while True:
        page = store.list_active_users(page_size=1, cursor=cursor)
        seen += [u.user_id for u in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected
