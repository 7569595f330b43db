package main

import "html/template"

// pages are the portal's two pages. The layout names the environment on
// every page, as the guide's "Docs portal - staging environment" does.
var pages = template.Must(template.New("pages").Parse(`
{{define "top"}}<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Docs portal — {{.Env}} environment</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<header><h1>Docs portal — {{.Env}} environment</h1></header>
<main>
{{end}}

{{define "bottom"}}</main>
</body>
</html>
{{end}}

{{define "home"}}{{template "top" .}}
{{with .Notice}}<p class="notice" role="status">{{.}}</p>{{end}}
{{if .SignedIn}}
<p class="who">Signed in as <strong>{{.Name}}</strong>{{with .Email}} ({{.}}){{end}}</p>
<p>The access token expires at {{.AccessExpiry}}.</p>
<div class="actions">
{{if .HasRefresh}}<form method="post" action="/refresh"><button type="submit">Refresh tokens</button></form>{{end}}
<form method="post" action="/logout"><button type="submit" class="secondary">Sign out</button></form>
</div>
<h2>ID token claims</h2>
<table id="id-token-claims">
<thead><tr><th scope="col">Claim</th><th scope="col">Value</th></tr></thead>
<tbody>{{range .Claims}}<tr><td>{{.Name}}</td><td>{{.Value}}</td></tr>{{end}}</tbody>
</table>
<h2>Userinfo</h2>
<table id="userinfo">
<thead><tr><th scope="col">Claim</th><th scope="col">Value</th></tr></thead>
<tbody>{{range .Userinfo}}<tr><td>{{.Name}}</td><td>{{.Value}}</td></tr>{{end}}</tbody>
</table>
{{else}}
{{if .SignedOut}}<p class="notice" role="status">You are signed out.</p>{{end}}
<p>The documentation in this environment is for signed-in officers. Sign in with your Lanyard account.</p>
<p><a class="button" id="login" href="/login">Login</a></p>
{{end}}
<footer><p>Client <code>{{.ClientID}}</code> of <code>{{.Issuer}}</code></p></footer>
{{template "bottom" .}}{{end}}

{{define "error"}}{{template "top" .}}
<div class="error" role="alert"><h2>Sign-in problem</h2><p>{{.Message}}</p></div>
<p><a class="button" href="/login">Login</a> <a href="/">Home</a></p>
{{template "bottom" .}}{{end}}
`))

const styleCSS = `body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;background:#f6f7f9}
header{background:#123b6d;color:#fff;padding:16px 24px}
header h1{margin:0;font-size:20px}
main{max-width:880px;margin:24px auto;padding:0 24px}
.button,button{display:inline-block;background:#0b5cad;color:#fff;border:0;border-radius:4px;padding:10px 20px;font-size:16px;text-decoration:none;cursor:pointer}
button.secondary{background:#5a6470}
.actions{display:flex;gap:12px;margin:16px 0}
.actions form{margin:0}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:24px}
th,td{border:1px solid #d8dce1;padding:6px 10px;text-align:left;vertical-align:top;word-break:break-all}
th{background:#eef1f4}
.notice{background:#e7f3e8;border:1px solid #9cc9a0;padding:10px 14px;border-radius:4px}
.error{background:#fdecea;border:1px solid #e0a39c;padding:10px 14px;border-radius:4px}
footer{color:#5a6470;font-size:14px;margin-top:32px}
`
