using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Claims;
using System.Text;
using System.Text.Json.Nodes;
using System.Threading.RateLimiting;
using JobLog.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Requests;

public class RequestLoggingTests
{
    [Test]
    public async Task RequestsUnderTheDashboardsPrefixThatNoEndpointTakes_AreNotRecorded_TheApplicationsAre()
    {
        // A 405 or 404 under /joblog is the dashboard's (no endpoint, so no JobLogExempt on it), not business traffic.
        await using var web = await WebFixture.StartAsync(app =>
        {
            app.UseJobLogRequests();
            app.MapGet("/orders", () => "ok");
            app.MapJobLogDashboard();
        });
        foreach (var (method, path) in new[] { ("PUT", "/joblog"), ("DELETE", "/joblog/api/tasks"), ("GET", "/joblog/tasks/not-a-guid"), ("GET", "/JobLog/nothing"), ("GET", "/joblog") })
        {
            using var response = await web.Client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));
            Assert.That((int)response.StatusCode, Is.AnyOf(403, 404, 405), $"{method} {path}");
        }

        (await web.Client.GetAsync("/orders")).Dispose();
        (await web.Client.GetAsync("/joblogger")).Dispose();
        await web.FlushAsync();
        var paths = await web.QueryAsync(db => db.InputRequestLogs.AsNoTracking().Select(r => r.Path).ToListAsync());
        Assert.That(paths, Is.EquivalentTo(new[] { "/orders", "/joblogger" }), "the application's requests, its 404 included");
    }

    [Test]
    public async Task Post_WithPasswordAtDepthThreeAuthorizationAndToken_StoresAllThreeMaskedAndTheEndpointStillReadsItsBody()
    {
        await using var web = await WebFixture.StartAsync(app =>
        {
            app.UseJobLogRequests();
            app.MapPost("/orders", async (HttpRequest request) =>
            {
                var body = await JsonNode.ParseAsync(request.Body);
                return Results.Json(new { seen = body!["user"]!["profile"]!["password"]!.GetValue<string>() });
            });
        });
        using var request = new HttpRequestMessage(HttpMethod.Post, "/orders?token=t0ken-value&page=2")
        {
            Content = new StringContent("""{"user":{"profile":{"password":"hunter2","login":"ann"}},"total":10}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "secret-bearer");

        using var response = await web.Client.SendAsync(request);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("""{"seen":"hunter2"}"""), "the endpoint read the body the client sent");
        var log = await web.CompletedInputAsync("/orders");
        Assert.That(log.RequestBody, Does.Not.Contain("hunter2").And.Contain("[Filtered]").And.Contain("\"login\":\"ann\""));
        Assert.That(log.RequestHeaders, Does.Not.Contain("secret-bearer").And.Contain("[Filtered]"));
        Assert.That(log.Queries, Does.Not.Contain("t0ken-value").And.Contain("\"page\":\"2\""));
        Assert.That(log.ResponseBody, Is.EqualTo("""{"seen":"hunter2"}"""), "'seen' is not a sensitive name: the response body is stored as sent");
        Assert.That(log.Method, Is.EqualTo("POST"));
        Assert.That(log.ResponseCode, Is.EqualTo(200));
        Assert.That(log.Status, Is.EqualTo(RequestLogStatus.Info));
        Assert.That(log.Type, Is.EqualTo(InputRequestType.Common));
    }

    [Test]
    public async Task Endpoint_WhenItThrows_RecordsErrorWithTheExceptionAndTheClientStillGets500()
    {
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.MapGet("/boom", IResult () => throw new InvalidOperationException("card processor unreachable"));
            },
            server: Server.Kestrel);

        using var response = await web.Client.GetAsync("/boom");

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.InternalServerError));
        var log = await web.CompletedInputAsync("/boom");
        Assert.That(log.Status, Is.EqualTo(RequestLogStatus.Error));
        Assert.That(log.ResponseCode, Is.EqualTo(500));
        Assert.That(log.ExceptionName, Is.EqualTo("System.InvalidOperationException"));
        Assert.That(log.ErrorDescription, Does.Contain("card processor unreachable").And.Contain("at "));
    }

    [Test]
    public async Task Endpoint_WhenItThrows_UnderTestServer_RecordsErrorWithTheExceptionAsUnderKestrel()
    {
        // TestServer never runs OnCompleted for a response whose exception reached it: the record must not wait for it.
        await using var web = await WebFixture.StartAsync(app =>
        {
            app.UseJobLogRequests();
            app.MapGet("/boom", IResult () => throw new InvalidOperationException("card processor unreachable"));
        });

        Assert.ThrowsAsync<InvalidOperationException>(() => web.Client.GetAsync("/boom"));

        var log = await web.CompletedInputAsync("/boom");
        Assert.That(log.Status, Is.EqualTo(RequestLogStatus.Error));
        Assert.That(log.ResponseCode, Is.EqualTo(500));
        Assert.That(log.ExceptionName, Is.EqualTo("System.InvalidOperationException"));
    }

    [Test]
    public async Task RateLimiter_WhenItRejects_RecordsThrottledWith429()
    {
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.UseRateLimiter();
                app.MapGet("/limited", () => "ok").RequireRateLimiting("one");
            },
            services => services.AddRateLimiter(o =>
            {
                o.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
                o.AddFixedWindowLimiter("one", l =>
                {
                    l.PermitLimit = 1;
                    l.Window = TimeSpan.FromHours(1);
                    l.QueueLimit = 0;
                });
            }));

        using var first = await web.Client.GetAsync("/limited");
        using var second = await web.Client.GetAsync("/limited");

        Assert.That(first.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(second.StatusCode, Is.EqualTo(HttpStatusCode.TooManyRequests));
        List<InputRequestLog> logs = [];
        await LedgerHost.EventuallyAsync(async () =>
        {
            await web.FlushAsync();
            logs = await web.InputsAsync();
            return logs.Count == 2 && logs.All(l => l.Status != RequestLogStatus.Incomplete);
        });
        var ordered = logs.OrderBy(l => l.RequestTimestamp).ThenBy(l => l.Id).ToList();
        Assert.That(ordered.Select(l => l.Type), Is.EqualTo(new[] { InputRequestType.Common, InputRequestType.Throttled }));
        Assert.That(ordered[1].ResponseCode, Is.EqualTo(429));
        Assert.That(ordered[1].Status, Is.EqualTo(RequestLogStatus.Warning));
    }

    [Test]
    public async Task Endpoint_Returning429Itself_IsNotThrottled()
    {
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.UseRateLimiter();
                app.MapGet("/busy", () => Results.StatusCode(429));
            },
            services => services.AddRateLimiter(o => o.RejectionStatusCode = 429));

        using var response = await web.Client.GetAsync("/busy");

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.TooManyRequests));
        var log = await web.CompletedInputAsync("/busy");
        Assert.That(log.Type, Is.EqualTo(InputRequestType.Common));
        Assert.That(log.Status, Is.EqualTo(RequestLogStatus.Warning));
    }

    [TestCase(LedgerProvider.Sqlite)]
    [TestCase(LedgerProvider.PostgreSql)]
    public async Task Request_WhileTheEndpointRuns_IsAlreadyRecordedIncompleteWithItsBody(LedgerProvider provider)
    {
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.MapPost("/slow", async (HttpRequest request) =>
                {
                    entered.SetResult();
                    await release.Task;
                    using var reader = new StreamReader(request.Body);
                    return Results.Text((await reader.ReadToEndAsync()).ToUpperInvariant());
                });
            },
            ledger: await Ledgers.CreateAsync(provider));

        var call = web.Client.PostAsync("/slow", new StringContent("user=ann&password=pw", Encoding.UTF8, "application/x-www-form-urlencoded"));
        await entered.Task;
        await web.FlushAsync();
        var during = await web.QueryAsync(db => db.InputRequestLogs.AsNoTracking().SingleAsync());
        release.SetResult();
        using var response = await call;

        Assert.That(during.Status, Is.EqualTo(RequestLogStatus.Incomplete));
        Assert.That(during.ResponseCode, Is.Null);
        Assert.That(during.RequestBody, Is.EqualTo("user=ann&password=[Filtered]"));
        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("USER=ANN&PASSWORD=PW"), "the endpoint read the whole body after the read-ahead");
        var after = await web.CompletedInputAsync("/slow");
        Assert.That(after.Id, Is.EqualTo(during.Id));
        Assert.That(after.Status, Is.EqualTo(RequestLogStatus.Info));
        Assert.That(after.RequestBody, Is.EqualTo("user=ann&password=[Filtered]"));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task EndpointMetadata_SlugExemptAndHiddenBody_AreHonoured(bool bodyPattern)
    {
        // With a body pattern of the application's (docs/http-and-commands.md's example), the hidden body's "[Filtered]"
        // was stored as "[ [hidden: the rest is not valid JSON]" (the writer read it as JSON).
        await using var web = await WebFixture.StartAsync(app =>
        {
            app.UseJobLogRequests(o => o.ExcludedPaths.Add("/healthz"));
            app.MapPost("/named", () => "ok").WithName("create-order");
            app.MapPost("/slugged", () => "ok").WithName("ignored-name").WithJobLogSlug("payments");
            app.MapPost("/hidden", async (HttpRequest r) => (await new StreamReader(r.Body).ReadToEndAsync()).Length).HideJobLogRequestBody();
            app.MapGet("/exempt", () => "ok").JobLogExempt();
            app.MapGet("/healthz", () => "ok");
            app.MapGet("/anonymous", () => "ok");
        }, options: o =>
        {
            if (bodyPattern)
            {
                o.Redaction.BodyPatterns.Add(@"card=(\d+)");
            }
        });

        foreach (var path in new[] { "/named", "/slugged", "/hidden" })
        {
            using var r = await web.Client.PostAsync(path, new StringContent("card=4111111111111111"));
            Assert.That(r.IsSuccessStatusCode, path);
        }

        using var hiddenRead = await web.Client.PostAsync("/hidden", new StringContent("0123456789"));
        Assert.That(await hiddenRead.Content.ReadAsStringAsync(), Is.EqualTo("10"), "a hidden body is still the endpoint's to read");
        (await web.Client.GetAsync("/exempt")).Dispose();
        (await web.Client.GetAsync("/healthz")).Dispose();
        (await web.Client.GetAsync("/anonymous")).Dispose();

        List<InputRequestLog> logs = [];
        await LedgerHost.EventuallyAsync(async () =>
        {
            await web.FlushAsync();
            logs = await web.InputsAsync();
            return logs.Count == 5 && logs.All(l => l.Status != RequestLogStatus.Incomplete);
        });
        Assert.That(logs.Select(l => l.Path), Has.None.EqualTo("/exempt").And.None.EqualTo("/healthz"));
        Assert.That(logs.Single(l => l.Path == "/named").Slug, Is.EqualTo("create-order"));
        Assert.That(logs.Single(l => l.Path == "/slugged").Slug, Is.EqualTo("payments"));
        Assert.That(logs.Single(l => l.Path == "/anonymous").Slug, Is.Null);
        Assert.That(logs.Where(l => l.Path == "/hidden").Select(l => l.RequestBody), Is.All.EqualTo("[Filtered]"));
        // Stored (not hidden), with the card number masked by the text policy.
        Assert.That(logs.Single(l => l.Path == "/named").RequestBody, Is.EqualTo("card=[Filtered]"));
    }

    [Test]
    public async Task Login_MarkedByTheEndpoint_IsTypedAndAttributedToTheUser()
    {
        await using var web = await WebFixture.StartAsync(app =>
        {
            app.UseJobLogRequests();
            app.MapPost("/login", (HttpContext context, LoginForm form) =>
            {
                var ok = form.Password == "right";
                context.MarkJobLogLogin(ok);
                if (!ok)
                {
                    return Results.Unauthorized();
                }

                // What an authentication handler does when the sign-in succeeds.
                context.User = new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.NameIdentifier, "user-42")], "test"));
                return Results.Ok();
            }).WithJobLogSlug("login");
        });

        using var failed = await web.Client.PostAsJsonAsync("/login", new LoginForm("ann", "wrong"));
        using var succeeded = await web.Client.PostAsJsonAsync("/login", new LoginForm("ann", "right"));

        Assert.That(failed.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        Assert.That(succeeded.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        List<InputRequestLog> logs = [];
        await LedgerHost.EventuallyAsync(async () =>
        {
            await web.FlushAsync();
            logs = await web.InputsAsync();
            return logs.Count == 2 && logs.All(l => l.Status != RequestLogStatus.Incomplete);
        });
        var bad = logs.Single(l => l.ResponseCode == 401);
        var good = logs.Single(l => l.ResponseCode == 200);
        Assert.That(bad.Type, Is.EqualTo(InputRequestType.UnsuccessfulLogin));
        Assert.That(bad.UserId, Is.Null);
        Assert.That(good.Type, Is.EqualTo(InputRequestType.SuccessfulLogin));
        Assert.That(good.UserId, Is.EqualTo("user-42"));
        Assert.That(logs.Select(l => l.RequestBody), Has.All.Not.Contain("wrong").And.All.Not.Contain("right"));
        Assert.That(logs.Select(l => l.Slug), Is.All.EqualTo("login"));
    }

    [Test]
    public async Task ClientIp_ComesFromTheConnectionNotFromXForwardedFor()
    {
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.MapGet("/ip", (HttpContext c) => c.Connection.RemoteIpAddress!.ToString());
            },
            server: Server.Kestrel);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/ip");
        request.Headers.Add("X-Forwarded-For", "203.0.113.9");

        using var response = await web.Client.SendAsync(request);

        var log = await web.CompletedInputAsync("/ip");
        Assert.That(log.Ip, Is.EqualTo("127.0.0.1"));
        Assert.That(log.RequestHeaders, Does.Contain("203.0.113.9"), "the header itself is kept as sent");
    }

    [Test]
    public async Task Response_TextIsMaskedBinaryIsNotStoredAndSetCookieIsHidden()
    {
        await using var web = await WebFixture.StartAsync(app =>
        {
            app.UseJobLogRequests();
            app.MapGet("/token", (HttpContext c) =>
            {
                c.Response.Cookies.Append("session", "cookie-secret");
                return Results.Json(new { access_token = "tok-123", expires = 3600 });
            });
            app.MapGet("/image", () => Results.Bytes(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0, 1, 2, 3 }, "image/png"));
        });

        using var token = await web.Client.GetAsync("/token");
        using var image = await web.Client.GetAsync("/image");

        Assert.That(await token.Content.ReadAsStringAsync(), Does.Contain("tok-123"), "the client gets the real body");
        var tokenLog = await web.CompletedInputAsync("/token");
        Assert.That(tokenLog.ResponseBody, Does.Not.Contain("tok-123").And.Contain("\"expires\":3600"));
        Assert.That(tokenLog.ResponseHeaders, Does.Not.Contain("cookie-secret").And.Contain("Set-Cookie"));
        var imageLog = await web.CompletedInputAsync("/image");
        Assert.That(imageLog.ResponseBody, Is.Null);
        Assert.That(await image.Content.ReadAsByteArrayAsync(), Has.Length.EqualTo(8));
    }

    [Test]
    public async Task Response_StreamedInChunks_ReachesTheClientWholeAndIsStoredBounded()
    {
        const int chunks = 200;
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.MapGet("/stream", async (HttpContext c) =>
                {
                    c.Response.ContentType = "text/plain";
                    for (var i = 0; i < chunks; i++)
                    {
                        await c.Response.WriteAsync(new string('x', 1023) + "\n");
                        await c.Response.Body.FlushAsync();
                    }
                });
            },
            server: Server.Kestrel);

        using var response = await web.Client.GetAsync("/stream", HttpCompletionOption.ResponseHeadersRead);
        var body = await response.Content.ReadAsStringAsync();

        Assert.That(body, Has.Length.EqualTo(chunks * 1024));
        var log = await web.CompletedInputAsync("/stream");
        Assert.That(log.ResponseBody!.Length, Is.LessThanOrEqualTo(10_000));
        Assert.That(log.ResponseBody, Does.EndWith("…"));
    }

    [Test]
    public async Task Response_WrittenThroughBodyWriterWithoutFlush_ReachesTheClient()
    {
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.MapGet("/pipe", (HttpContext c) =>
                {
                    c.Response.ContentType = "text/plain";
                    var span = c.Response.BodyWriter.GetSpan(5);
                    "hello"u8.CopyTo(span);
                    c.Response.BodyWriter.Advance(5);
                    return Task.CompletedTask;
                });
            },
            server: Server.Kestrel);

        using var response = await web.Client.GetAsync("/pipe");

        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("hello"));
        var log = await web.CompletedInputAsync("/pipe");
        Assert.That(log.ResponseBody, Is.EqualTo("hello"));
    }

    [Test]
    public async Task ChunkedRequestBody_IsCapturedAsTheEndpointReadsIt()
    {
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.MapPost("/chunked", async (HttpRequest r) => (await new StreamReader(r.Body).ReadToEndAsync()).Length);
            },
            server: Server.Kestrel);
        var content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes("""{"apiKey":"k-1","n":1}""")));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/chunked") { Content = content };
        request.Headers.TransferEncodingChunked = true;

        using var response = await web.Client.SendAsync(request);

        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("22"));
        var log = await web.CompletedInputAsync("/chunked");
        Assert.That(log.RequestBody, Is.EqualTo("""{"apiKey":"[Filtered]","n":1}"""));
    }

    [TestCase(Server.TestServer, 0)]
    [TestCase(Server.Kestrel, 0)]
    [TestCase(Server.Kestrel, 5)]
    public async Task BufferedBody_TheEndpointRewindsAndReadsAgain_AsWithoutJobLog(Server server, int rewindTo)
    {
        // A webhook checks its signature over the raw body, rewinds and binds it: EnableBuffering before JobLog made the
        // body seekable, and JobLog's capture must not take that away (Position = 0 threw NotSupportedException: a 500).
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.Use((context, next) =>
                {
                    context.Request.EnableBuffering();
                    return next(context);
                });
                app.UseJobLogRequests();
                app.MapPost("/webhook", async (HttpRequest r) =>
                {
                    var first = await new StreamReader(r.Body, leaveOpen: true).ReadToEndAsync();
                    r.Body.Position = rewindTo;
                    var second = await new StreamReader(r.Body, leaveOpen: true).ReadToEndAsync();
                    r.Body.Seek(0, SeekOrigin.Begin);
                    var third = await new StreamReader(r.Body).ReadToEndAsync();
                    return first + "|" + second + "|" + third;
                });
            },
            server: server);
        const string Body = """{"event":"paid","secret":"s-1","n":1}""";

        using var response = await web.Client.PostAsync("/webhook", new StringContent(Body, Encoding.UTF8, "application/json"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo(Body + "|" + Body[rewindTo..] + "|" + Body));
        var log = await web.CompletedInputAsync("/webhook");
        Assert.That(log.RequestBody, Is.EqualTo("""{"event":"paid","secret":"[Filtered]","n":1}"""), "each byte captured once");
    }

    [TestCase(false, null, HttpStatusCode.OK)]
    [TestCase(true, null, HttpStatusCode.OK)]
    [TestCase(false, 1000L, HttpStatusCode.RequestEntityTooLarge)]
    [TestCase(true, 1000L, HttpStatusCode.RequestEntityTooLarge)]
    public async Task Endpoint_SettingItsOwnBodySizeLimit_IsServedAsWithoutJobLog(bool jobLog, long? limit, HttpStatusCode expected)
    {
        // An upload endpoint lifts (or lowers) the server's limit itself before reading, as ASP.NET Core's docs show.
        // Kestrel refuses the change once the body is being read, and JobLog's read-ahead had started reading it: the
        // assignment threw InvalidOperationException, a 500.
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                if (jobLog)
                {
                    app.UseJobLogRequests();
                }

                app.MapPost("/upload", async (HttpContext context) =>
                {
                    context.Features.Get<IHttpMaxRequestBodySizeFeature>()!.MaxRequestBodySize = limit;
                    return (await new StreamReader(context.Request.Body).ReadToEndAsync()).Length;
                });
            },
            server: Server.Kestrel);

        using var response = await web.Client.PostAsync("/upload", new StringContent("{\"secret\":\"s-1\",\"pad\":\"" + new string('a', 5000) + "\"}", Encoding.UTF8, "application/json"));

        Assert.That(response.StatusCode, Is.EqualTo(expected));
        if (jobLog)
        {
            var log = await web.CompletedInputAsync("/upload");
            Assert.That(log.ResponseCode, Is.EqualTo((int)expected));
            Assert.That(log.RequestBody, Does.StartWith("""{"secret":"[Filtered]","pad":"aaa"""));
        }
    }

    [TestCase(Server.TestServer)]
    [TestCase(Server.Kestrel)]
    public async Task FormBody_ReadAheadForTheRecord_IsStillParsedByTheEndpoint(Server server)
    {
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.MapPost("/form", async (HttpRequest r) => (await r.ReadFormAsync())["user"].ToString() + "/" + r.Form["password"]);
                app.MapPost("/pipe", async (HttpRequest r) =>
                {
                    var result = await r.BodyReader.ReadAtLeastAsync(int.MaxValue / 2);
                    var text = Encoding.UTF8.GetString(result.Buffer);
                    r.BodyReader.AdvanceTo(result.Buffer.End);
                    return text;
                });
            },
            server: server);
        var form = new FormUrlEncodedContent([new("user", "ann"), new("password", "pw")]);

        using var parsed = await web.Client.PostAsync("/form", form);
        using var piped = await web.Client.PostAsync("/pipe", new StringContent("read through the pipe"));

        Assert.That(await parsed.Content.ReadAsStringAsync(), Is.EqualTo("ann/pw"));
        Assert.That(await piped.Content.ReadAsStringAsync(), Is.EqualTo("read through the pipe"));
        var log = await web.CompletedInputAsync("/form");
        Assert.That(log.RequestBody, Is.EqualTo("user=ann&password=[Filtered]"));
    }

    [Test]
    public async Task Recording_WhenItFails_LetsTheRequestThroughUnrecorded()
    {
        await using var web = await WebFixture.StartAsync(app =>
        {
            // A server feature that throws when JobLog inspects the request.
            app.Use((context, next) =>
            {
                context.Features.Set<Microsoft.AspNetCore.Http.Features.IHttpUpgradeFeature>(new BrokenUpgradeFeature());
                return next(context);
            });
            app.UseJobLogRequests();
            app.MapPost("/fragile", async (HttpRequest r) => await new StreamReader(r.Body).ReadToEndAsync());
        });

        using var response = await web.Client.PostAsync("/fragile", new StringContent("payload"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("payload"));
        await web.FlushAsync();
        Assert.That(await web.InputsAsync(), Is.Empty);
    }

    [Test]
    public async Task NotFound_IsRecordedAsWarningWithoutSlug()
    {
        await using var web = await WebFixture.StartAsync(app =>
        {
            app.UseJobLogRequests();
            app.MapGet("/exists", () => "ok");
        });

        using var response = await web.Client.GetAsync("/missing?password=p");

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        var log = await web.CompletedInputAsync("/missing");
        Assert.That(log.Status, Is.EqualTo(RequestLogStatus.Warning));
        Assert.That(log.Slug, Is.Null);
        Assert.That(log.Queries, Is.EqualTo("""{"password":"[Filtered]"}"""));
    }

    public sealed record LoginForm(string User, string Password);

    private sealed class BrokenUpgradeFeature : Microsoft.AspNetCore.Http.Features.IHttpUpgradeFeature
    {
        public bool IsUpgradableRequest => throw new InvalidOperationException("broken server feature");

        public Task<Stream> UpgradeAsync() => throw new NotSupportedException();
    }
}
