-- wrk: every request creates an item (POST /api/items with a JSON body), as a client would.
wrk.method = "POST"
wrk.body = '{"name": "bench", "description": "written by bench/run.py"}'
wrk.headers["Content-Type"] = "application/json"
