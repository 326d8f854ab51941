"""Sample schema for the demo: the guide's checks use a `users` table ("Security
Verification" > "Test Read-Only Enforcement"); two more tables make joins and the checksum
meaningful."""

DATABASE = "demo"

SCHEMA_SQL = """
CREATE TABLE users (
    id         serial PRIMARY KEY,
    name       text NOT NULL,
    email      text UNIQUE NOT NULL,
    created_at timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00'
);
CREATE TABLE products (
    id    serial PRIMARY KEY,
    name  text NOT NULL,
    price numeric(10, 2) NOT NULL
);
CREATE TABLE orders (
    id         serial PRIMARY KEY,
    user_id    int NOT NULL REFERENCES users(id),
    product_id int NOT NULL REFERENCES products(id),
    quantity   int NOT NULL CHECK (quantity > 0)
);
INSERT INTO users (name, email)
SELECT 'user ' || g, 'user' || g || '@example.com' FROM generate_series(1, 25) AS g;
INSERT INTO products (name, price) VALUES
    ('keyboard', 49.90), ('mouse', 19.90), ('monitor', 229.00), ('laptop stand', 39.50);
INSERT INTO orders (user_id, product_id, quantity)
SELECT 1 + (g * 7) % 25, 1 + g % 4, 1 + g % 3 FROM generate_series(1, 60) AS g;
"""

# A digest of schema and data, computed on the server directly (not through the proxy), to
# prove the blocked statements changed nothing.
CHECKSUM_SQL = """
SELECT md5(
  (SELECT string_agg(table_name || '.' || column_name || ':' || data_type, ',' ORDER BY table_name, ordinal_position)
     FROM information_schema.columns WHERE table_schema = 'public')
  || (SELECT coalesce(string_agg(u::text, ',' ORDER BY u.id), '') FROM users u)
  || (SELECT coalesce(string_agg(p::text, ',' ORDER BY p.id), '') FROM products p)
  || (SELECT coalesce(string_agg(o::text, ',' ORDER BY o.id), '') FROM orders o))
"""
