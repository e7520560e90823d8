using System.Net;
using System.Security.Claims;
using System.Text.Encodings.Web;
using JobLog.Testing;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Dashboard;

/// <summary>Without an authorization policy the dashboard answers local requests only (Hangfire's default).</summary>
public class AccessTests
{
    private static readonly string[] s_urls = ["/joblog", "/joblog/tasks", "/joblog/api/tasks", "/joblog/api/overview", "/joblog/assets/joblog.js"];

    [Test]
    public async Task WithoutPolicy_LoopbackRequest_IsServed()
    {
        await using var host = await DashboardHost.StartAsync(TestLedger.Sqlite());

        foreach (var url in s_urls)
        {
            using var response = await host.Client.GetAsync(url);
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), url);
        }
    }

    [TestCase("203.0.113.7")]
    [TestCase("10.0.0.5")]
    [TestCase("2001:db8::1")]
    public async Task WithoutPolicy_RemoteRequest_IsForbidden(string ip)
    {
        await using var host = await DashboardHost.StartAsync(TestLedger.Sqlite());
        await host.SeedAsync(Rows.Task("Secret", DateTime.UtcNow, input: "Card=4111"));

        foreach (var url in s_urls)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            request.Headers.Add(DashboardHost.RemoteIpHeader, ip);
            using var response = await host.Client.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();

            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden), url);
            Assert.That(body, Does.Not.Contain("Secret").And.Not.Contain("4111"), url);
            Assert.That(response.Headers.Contains("Content-Security-Policy"), url);
        }
    }

    [Test]
    public async Task WithoutPolicy_ForwardedHeadersMiddlewareTrustingEveryone_RemoteClaimingLoopback_IsForbidden()
    {
        // What ASPNETCORE_FORWARDEDHEADERS_ENABLED=true sets up: every proxy trusted, X-Forwarded-For rewrites the peer.
        await using var host = await DashboardHost.StartAsync(TestLedger.Sqlite(), beforeMap: app =>
        {
            var forwarded = new ForwardedHeadersOptions { ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto };
            forwarded.KnownIPNetworks.Clear();
            forwarded.KnownProxies.Clear();
            app.UseForwardedHeaders(forwarded);
        });
        await host.SeedAsync(Rows.Task("Secret", DateTime.UtcNow, input: "Card=4111"));

        foreach (var claimed in new[] { "127.0.0.1", "::1", "127.0.0.1, 127.0.0.1" })
        {
            foreach (var url in s_urls)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, url);
                request.Headers.Add(DashboardHost.RemoteIpHeader, "203.0.113.7");
                request.Headers.TryAddWithoutValidation("X-Forwarded-For", claimed);
                using var response = await host.Client.SendAsync(request);
                var body = await response.Content.ReadAsStringAsync();

                Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden), $"{url} with X-Forwarded-For: {claimed}");
                Assert.That(body, Does.Not.Contain("4111"), url);
            }
        }
    }

    [TestCase("X-Forwarded-For", "203.0.113.7")]
    [TestCase("X-Forwarded-For", "127.0.0.1, 203.0.113.7")]
    [TestCase("X-Original-For", "203.0.113.7:51234")]
    [TestCase("X-Original-For", "[2001:db8::1]:443")]
    [TestCase("Forwarded", "for=203.0.113.7;proto=https")]
    [TestCase("Forwarded", "for=\"[2001:db8::1]:443\", for=127.0.0.1")]
    [TestCase("Forwarded", "for=unknown")]
    [TestCase("X-Forwarded-For", "not-an-address")]
    public async Task WithoutPolicy_LoopbackPeerForwardingForSomeoneElse_IsForbidden(string header, string value)
    {
        // A reverse proxy on the same machine: the TCP peer is loopback, the client is not.
        await using var host = await DashboardHost.StartAsync(TestLedger.Sqlite());

        using var request = new HttpRequestMessage(HttpMethod.Get, "/joblog/api/tasks");
        request.Headers.TryAddWithoutValidation(header, value);
        using var response = await host.Client.SendAsync(request);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
    }

    [TestCase("X-Forwarded-For", "127.0.0.1")]
    [TestCase("X-Forwarded-For", "::1, 127.0.0.1")]
    [TestCase("Forwarded", "for=127.0.0.1")]
    [TestCase("Forwarded", "for=\"[::1]:5000\"")]
    [TestCase("X-Original-For", "127.0.0.1:40000")]
    public async Task WithoutPolicy_LoopbackPeerForwardingForLoopback_IsServed(string header, string value)
    {
        await using var host = await DashboardHost.StartAsync(TestLedger.Sqlite());

        using var request = new HttpRequestMessage(HttpMethod.Get, "/joblog/api/tasks");
        request.Headers.TryAddWithoutValidation(header, value);
        using var response = await host.Client.SendAsync(request);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }

    [TestCase("evil.example")]
    [TestCase("evil.example:5000")]
    [TestCase("localhost.evil.example")]
    [TestCase("203.0.113.7")]
    [TestCase("127.0.0.1.nip.io")]
    public async Task WithoutPolicy_LoopbackPeerWithAForeignHostName_IsForbidden(string hostHeader)
    {
        // DNS rebinding: a page from evil.example whose name now resolves to 127.0.0.1 reads the dashboard.
        await using var host = await DashboardHost.StartAsync(TestLedger.Sqlite());

        using var request = new HttpRequestMessage(HttpMethod.Get, "/joblog/api/tasks");
        request.Headers.Host = hostHeader;
        using var response = await host.Client.SendAsync(request);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
    }

    [TestCase("localhost")]
    [TestCase("LOCALHOST:5000")]
    [TestCase("app.localhost:8080")]
    [TestCase("127.0.0.1:5000")]
    [TestCase("127.1.2.3")]
    [TestCase("[::1]:5000")]
    public async Task WithoutPolicy_LoopbackPeerWithALoopbackHostName_IsServed(string hostHeader)
    {
        await using var host = await DashboardHost.StartAsync(TestLedger.Sqlite());

        using var request = new HttpRequestMessage(HttpMethod.Get, "/joblog/api/tasks");
        request.Headers.Host = hostHeader;
        using var response = await host.Client.SendAsync(request);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }

    [Test]
    public async Task WithoutPolicy_OnKestrel_ClientInANetworkNamespace_IsForbidden_WhateverItForwards()
    {
        using var network = VethNamespace.Create();
        var ledger = TestLedger.Sqlite();
        // As ASPNETCORE_FORWARDEDHEADERS_ENABLED=true does it: every proxy trusted.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            EnvironmentName = "Testing",
            Args = ["--ForwardedHeaders_Enabled=true"],
        });
        builder.WebHost.UseUrls($"http://{network.HostAddress}:0", "http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddJobLog(o =>
        {
            ledger.Apply(o);
            o.Sweeper.Enabled = false;
        });
        await using var app = builder.Build();
        app.MapGet("/peer", (HttpContext context) => context.Connection.RemoteIpAddress?.ToString() ?? "none");
        app.MapJobLogDashboard("/joblog");
        await app.StartAsync();
        try
        {
            var remote = app.Urls.Single(u => u.Contains(network.HostAddress.ToString(), StringComparison.Ordinal));
            var local = app.Urls.Single(u => u.Contains("127.0.0.1", StringComparison.Ordinal));
            var api = "/joblog/api/tasks";

            Assert.That(await network.CurlAsync(remote + "/peer"), Is.EqualTo(network.ClientAddress.ToString()), "the client's real address");
            Assert.That(await network.CurlAsync("--header", "X-Forwarded-For: 127.0.0.1", remote + "/peer"), Is.EqualTo("127.0.0.1"),
                "the forwarded-headers middleware believed the client");

            Assert.That(await network.StatusAsync(remote + api), Is.EqualTo(403));
            Assert.That(await network.StatusAsync(remote + api, "X-Forwarded-For: 127.0.0.1"), Is.EqualTo(403));
            Assert.That(await network.StatusAsync(remote + api, "X-Forwarded-For: 127.0.0.1", "Host: localhost"), Is.EqualTo(403));
            Assert.That(await network.StatusAsync(remote + api, "Forwarded: for=127.0.0.1", "Host: localhost"), Is.EqualTo(403));
            Assert.That(await network.StatusAsync(remote + api, "X-Original-For: 127.0.0.1:1", "Host: localhost"), Is.EqualTo(403));
            Assert.That(await network.StatusAsync(remote + "/joblog", "X-Forwarded-For: ::1"), Is.EqualTo(403));

            using var client = new HttpClient();
            Assert.That((await client.GetAsync(local.Replace("127.0.0.1", "localhost", StringComparison.Ordinal) + api)).StatusCode,
                Is.EqualTo(HttpStatusCode.OK), "the same host answers a loopback client");
        }
        finally
        {
            await app.StopAsync();
            await ledger.DisposeAsync();
        }
    }

    [Test]
    public async Task WithPolicy_AuthorizedRemoteUser_IsServed_AndAnonymousIsChallenged()
    {
        await using var host = await DashboardHost.StartAsync(
            TestLedger.Sqlite(),
            services: b =>
            {
                b.Services.AddAuthentication(HeaderAuthentication.SchemeName)
                    .AddScheme<AuthenticationSchemeOptions, HeaderAuthentication>(HeaderAuthentication.SchemeName, null);
                b.Services.AddAuthorization(o => o.AddPolicy("ops", p => p.RequireAuthenticatedUser().RequireRole("ops")));
            },
            beforeMap: app =>
            {
                app.UseAuthentication();
                app.UseAuthorization();
            },
            map: (_, group) => group.RequireAuthorization("ops"));

        using var authorized = new HttpRequestMessage(HttpMethod.Get, "/joblog/api/tasks");
        authorized.Headers.Add(DashboardHost.RemoteIpHeader, "203.0.113.7");
        authorized.Headers.Add(HeaderAuthentication.Header, "ops");
        using var anonymous = new HttpRequestMessage(HttpMethod.Get, "/joblog/api/tasks");
        anonymous.Headers.Add(DashboardHost.RemoteIpHeader, "203.0.113.7");
        using var wrongRole = new HttpRequestMessage(HttpMethod.Get, "/joblog/api/tasks");
        wrongRole.Headers.Add(DashboardHost.RemoteIpHeader, "203.0.113.7");
        wrongRole.Headers.Add(HeaderAuthentication.Header, "sales");

        Assert.That((await host.Client.SendAsync(authorized)).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That((await host.Client.SendAsync(anonymous)).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        Assert.That((await host.Client.SendAsync(wrongRole)).StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
    }

    [Test]
    public async Task WithPolicyThenAllowAnonymous_RemoteRequest_IsStillForbidden()
    {
        await using var host = await DashboardHost.StartAsync(
            TestLedger.Sqlite(),
            services: b => b.Services.AddAuthorization(),
            beforeMap: app => app.UseAuthorization(),
            map: (_, group) => group.RequireAuthorization().AllowAnonymous());

        using var request = new HttpRequestMessage(HttpMethod.Get, "/joblog/api/tasks");
        request.Headers.Add(DashboardHost.RemoteIpHeader, "203.0.113.7");

        Assert.That((await host.Client.SendAsync(request)).StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
    }

    [Test]
    public async Task Actions_AreNotMappedByDefault()
    {
        await using var host = await DashboardHost.StartAsync(TestLedger.Sqlite());
        var task = Rows.Task("Charge", DateTime.UtcNow, TaskState.Failed);
        await host.SeedAsync(task);

        using var request = new HttpRequestMessage(HttpMethod.Post, $"/joblog/tasks/{task.Id}/actions/probe");
        request.Headers.Add("X-JobLog-Action", "1");
        using var response = await host.Client.SendAsync(request);
        var page = await host.GetStringAsync($"/joblog/tasks/{task.Id}");

        Assert.That(response.StatusCode, Is.AnyOf(HttpStatusCode.NotFound, HttpStatusCode.MethodNotAllowed));
        Assert.That(page, Does.Not.Contain("data-action-url"));
    }

    [Test]
    public async Task Actions_WhenEnabled_RunOnlyFromTheDashboardsOwnPages()
    {
        var ran = new List<Guid>();
        await using var host = await DashboardHost.StartAsync(TestLedger.Sqlite(), dashboard: o =>
        {
            o.EnableActions = true;
            o.TaskActions.Add(new("probe", "Probe", d => d.Task.State == TaskState.Failed, (_, d, _) =>
            {
                ran.Add(d.Task.Id);
                return Task.FromResult("probed");
            }));
        });
        var failed = Rows.Task("Charge", DateTime.UtcNow, TaskState.Failed);
        var succeeded = Rows.Task("Charge", DateTime.UtcNow, TaskState.Succeeded);
        await host.SeedAsync(failed, succeeded);

        async Task<HttpStatusCode> PostAsync(Guid id, bool header, string? site)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/joblog/tasks/{id}/actions/probe");
            if (header)
            {
                request.Headers.Add("X-JobLog-Action", "1");
            }

            if (site is not null)
            {
                request.Headers.Add("Sec-Fetch-Site", site);
            }

            using var response = await host.Client.SendAsync(request);
            return response.StatusCode;
        }

        Assert.That(await PostAsync(failed.Id, header: false, site: null), Is.EqualTo(HttpStatusCode.Forbidden), "a plain cross-site form post");
        Assert.That(await PostAsync(failed.Id, header: true, site: "cross-site"), Is.EqualTo(HttpStatusCode.Forbidden));
        Assert.That(await PostAsync(succeeded.Id, header: true, site: "same-origin"), Is.EqualTo(HttpStatusCode.Conflict), "not available");
        Assert.That(ran, Is.Empty);
        Assert.That(await PostAsync(failed.Id, header: true, site: "same-origin"), Is.EqualTo(HttpStatusCode.OK));
        Assert.That(ran, Is.EqualTo(new[] { failed.Id }));
        Assert.That(await host.GetStringAsync($"/joblog/tasks/{failed.Id}"), Does.Contain("data-action-url"));
        Assert.That(await host.GetStringAsync($"/joblog/tasks/{succeeded.Id}"), Does.Not.Contain("data-action-url"));
    }

    [Test]
    public async Task Actions_WhenEnabled_WithIdsAndNamesThatAreNotOnes_AreA4xx_AndRunNothing()
    {
        var ran = new List<Guid>();
        await using var host = await DashboardHost.StartAsync(TestLedger.Sqlite(), dashboard: o =>
        {
            o.EnableActions = true;
            o.TaskActions.Add(new("probe", "Probe", _ => true, (_, d, _) =>
            {
                ran.Add(d.Task.Id);
                return Task.FromResult("probed");
            }));
        });
        var failed = Rows.Task("Charge", DateTime.UtcNow, TaskState.Failed);
        await host.SeedAsync(failed);
        var json = new string('[', 100_000) + new string(']', 100_000);
        var cases = new (string Method, string Path, HttpStatusCode Expected)[]
        {
            ("POST", "/joblog/tasks/zzz/actions/probe", HttpStatusCode.NotFound),
            ("POST", "/joblog/tasks/..%2F..%2Fetc%2Fpasswd/actions/probe", HttpStatusCode.NotFound),
            ("POST", $"/joblog/tasks/{Guid.Empty}/actions/probe", HttpStatusCode.NotFound),
            ("POST", $"/joblog/tasks/{Guid.NewGuid()}/actions/probe", HttpStatusCode.NotFound),
            ("POST", $"/joblog/tasks/{failed.Id}/actions/%3Cscript%3Ealert(1)%3C%2Fscript%3E", HttpStatusCode.NotFound),
            ("POST", $"/joblog/tasks/{failed.Id}/actions/{new string('p', 10_000)}", HttpStatusCode.NotFound),
            ("GET", $"/joblog/tasks/{failed.Id}/actions/probe", HttpStatusCode.MethodNotAllowed),
            ("PUT", $"/joblog/tasks/{failed.Id}/actions/probe", HttpStatusCode.MethodNotAllowed),
        };

        foreach (var (method, path, expected) in cases)
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), path)
            {
                Content = method == "GET" ? null : new StringContent(json, System.Text.Encoding.UTF8, "application/json"),
            };
            request.Headers.Add("X-JobLog-Action", "1");
            request.Headers.Add("Sec-Fetch-Site", "same-origin");
            using var response = await host.Client.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();

            Assert.That(response.StatusCode, Is.EqualTo(expected), $"{method} {path[..Math.Min(path.Length, 120)]}: {body}");
            Assert.That(body, Does.Not.Contain("<script>alert").And.Not.Contain("   at "), path);
            Assert.That(body.Length, Is.LessThan(20_000), "the answer does not say the path back whole");
        }

        Assert.That(ran, Is.Empty);
    }

    // UseCors() with a default policy applies it to every endpoint without CORS metadata of its own, the dashboard's too:
    // with AllowAnyOrigin (common for a public API) any site the operator visits could read the local-only dashboard's
    // API (the browser is on the loopback, the Host is localhost: the answer carried Access-Control-Allow-Origin: *).
    // The dashboard does not answer other origins' scripts unless the application put a CORS policy on the dashboard.
    [Test]
    public async Task TheApplicationsDefaultCorsPolicy_DoesNotOpenTheDashboard_ToOtherSites_ButOnePutOnTheDashboardDoes()
    {
        var now = DateTime.UtcNow;
        foreach (var onDashboard in new[] { false, true })
        {
            await using var host = await DashboardHost.StartAsync(
                TestLedger.Sqlite(),
                services: b => b.Services.AddCors(o =>
                {
                    o.AddDefaultPolicy(p => p.AllowAnyOrigin().AllowAnyHeader().AllowAnyMethod());
                    o.AddPolicy("ops-console", p => p.WithOrigins("https://ops.example").AllowAnyHeader().AllowAnyMethod());
                }),
                beforeMap: app => app.UseCors(),
                map: (_, group) =>
                {
                    if (onDashboard)
                    {
                        group.RequireCors("ops-console");
                    }
                });
            var task = Rows.Task("Charge", now, TaskState.Failed);
            await host.SeedAsync(task);

            async Task<(HttpStatusCode Status, string? AllowedOrigin, bool Data)> ReadAsync(string origin, string? fetchSite)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, "/joblog/api/tasks");
                request.Headers.Add("Origin", origin);
                if (fetchSite is not null)
                {
                    request.Headers.Add("Sec-Fetch-Site", fetchSite);
                }

                using var response = await host.Client.SendAsync(request);
                var body = await response.Content.ReadAsStringAsync();
                var allowed = response.Headers.TryGetValues("Access-Control-Allow-Origin", out var values) ? string.Join(",", values) : null;
                return (response.StatusCode, allowed, body.Contains(task.Id.ToString(), StringComparison.Ordinal));
            }

            var evil = await ReadAsync("https://evil.example", "cross-site");
            var evilOldBrowser = await ReadAsync("https://evil.example", null);
            var sibling = await ReadAsync("https://app.localhost", "same-site");
            var console = await ReadAsync("https://ops.example", "cross-site");
            var own = await ReadAsync("http://localhost", "same-origin");

            var context = "a policy on the dashboard: " + onDashboard;
            if (onDashboard)
            {
                Assert.That((console.Status, console.AllowedOrigin, console.Data), Is.EqualTo((HttpStatusCode.OK, "https://ops.example", true)), context);
                Assert.That((evil.AllowedOrigin, evilOldBrowser.AllowedOrigin), Is.EqualTo(((string?)null, (string?)null)), "the dashboard's policy does not grant it");
            }
            else
            {
                Assert.That(new[] { evil, evilOldBrowser, sibling, console }.Select(r => (r.Status, r.Data)),
                    Has.All.EqualTo((HttpStatusCode.Forbidden, false)), context);
            }

            Assert.That((own.Status, own.Data), Is.EqualTo((HttpStatusCode.OK, true)), context);
        }
    }

    // The custom header keeps a cross-site page out only while no CORS policy grants it: a permissive policy the
    // application put on the dashboard (AllowAnyOrigin, AllowAnyHeader, AllowAnyMethod) answers its preflights too. A browser that sends Sec-Fetch-Site is still refused; one that does not (Safari before 16.4, older
    // Chrome and Firefox) sends Origin on every cross-origin POST, and the dashboard did not read it.
    [Test]
    public async Task Actions_WithAPermissiveCorsPolicy_AreRefusedFromAnotherOrigin_WhenTheBrowserSendsNoSecFetchSite()
    {
        var ran = new List<Guid>();
        await using var host = await DashboardHost.StartAsync(
            TestLedger.Sqlite(),
            dashboard: o =>
            {
                o.EnableActions = true;
                o.TaskActions.Add(new("probe", "Probe", _ => true, (_, d, _) =>
                {
                    ran.Add(d.Task.Id);
                    return Task.FromResult("probed");
                }));
            },
            services: b => b.Services.AddCors(),
            beforeMap: app => app.UseCors(),
            map: (_, group) => group.RequireCors(p => p.AllowAnyOrigin().AllowAnyHeader().AllowAnyMethod()));
        var failed = Rows.Task("Charge", DateTime.UtcNow, TaskState.Failed);
        await host.SeedAsync(failed);
        var url = $"/joblog/tasks/{failed.Id}/actions/probe";

        using var preflight = new HttpRequestMessage(HttpMethod.Options, url);
        preflight.Headers.Add("Origin", "https://evil.example");
        preflight.Headers.Add("Access-Control-Request-Method", "POST");
        preflight.Headers.Add("Access-Control-Request-Headers", "x-joblog-action");
        using var granted = await host.Client.SendAsync(preflight);
        Assert.That(granted.Headers.TryGetValues("Access-Control-Allow-Headers", out var allowed) ? allowed : [], Does.Contain("x-joblog-action"),
            "the application's policy grants the header to any origin");

        async Task<HttpStatusCode> PostAsync(string origin, string? hostHeader = null)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, url);
            request.Headers.Add("X-JobLog-Action", "1");
            request.Headers.Add("Origin", origin);
            request.Headers.Host = hostHeader;
            using var response = await host.Client.SendAsync(request);
            return response.StatusCode;
        }

        Assert.That(await PostAsync("https://evil.example"), Is.EqualTo(HttpStatusCode.Forbidden));
        Assert.That(await PostAsync("http://localhost.evil.example"), Is.EqualTo(HttpStatusCode.Forbidden));
        Assert.That(await PostAsync("null"), Is.EqualTo(HttpStatusCode.Forbidden), "a sandboxed frame or a file: page");
        Assert.That(ran, Is.Empty);
        Assert.That(await PostAsync("http://localhost:8080"), Is.EqualTo(HttpStatusCode.Forbidden), "another port");
        Assert.That(ran, Is.Empty);
        Assert.That(await PostAsync("http://localhost"), Is.EqualTo(HttpStatusCode.OK), "the dashboard's own origin");
        Assert.That(await PostAsync("http://[::1]:5080", "[::1]:5080"), Is.EqualTo(HttpStatusCode.OK), "the dashboard's own origin");
        Assert.That(ran, Is.EqualTo(new[] { failed.Id, failed.Id }));
    }

    [Test]
    public void Map_WithoutAddJobLog_FailsWithAClearMessage()
    {
        var builder = WebApplication.CreateBuilder();
        using var app = builder.Build();

        var ex = Assert.Throws<InvalidOperationException>(() => app.MapJobLogDashboard());

        Assert.That(ex!.Message, Does.Contain("AddJobLog"));
    }

    /// <summary>Authenticates whoever sends <c>X-Test-Role</c>, in that role.</summary>
    private sealed class HeaderAuthentication(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder)
        : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
    {
        public const string SchemeName = "TestHeader";
        public const string Header = "X-Test-Role";

        protected override Task<AuthenticateResult> HandleAuthenticateAsync()
        {
            if (!Request.Headers.TryGetValue(Header, out var role))
            {
                return Task.FromResult(AuthenticateResult.NoResult());
            }

            var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, "tester"), new Claim(ClaimTypes.Role, role.ToString())], SchemeName);
            return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName)));
        }
    }
}
