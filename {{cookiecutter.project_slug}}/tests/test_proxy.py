"""Behind nginx the app trusts exactly one proxy hop."""


def test_one_forwarded_hop_is_trusted(app, client):
    """It takes scheme, host and client address from the nearest proxy only."""

    @app.get("/whoami")
    def whoami():
        from flask import request

        return {"scheme": request.scheme, "host": request.host, "remote": request.remote_addr}

    response = client.get(
        "/whoami",
        headers={
            "X-Forwarded-For": "203.0.113.9, 198.51.100.7",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "api.example.com",
        },
    )
    assert response.json == {"scheme": "https", "host": "api.example.com", "remote": "198.51.100.7"}
