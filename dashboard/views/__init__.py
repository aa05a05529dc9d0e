"""The dashboard's pages: each reads its widgets and query parameters, calls one loader, renders."""
