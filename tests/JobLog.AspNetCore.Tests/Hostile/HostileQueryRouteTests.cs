using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using JobLog.AspNetCore.Tests.Dashboard;
using JobLog.Testing;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Hostile;

/// <summary>
/// Every GET route of the dashboard and its API (read from the application's route table, not listed here) with hostile
/// query strings and route values: full-text syntax of FTS5 and tsquery, NUL, a lone surrogate, dates out of range,
/// repeated parameters, 100 KB values. Each answers a 400 that says why, or a 200 (or 404 for an id that is not there):
/// never a 500, never a hang.
/// </summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public partial class HostileQueryRouteTests(LedgerProvider provider)
{
    private static readonly string[] s_values =
    [
        "%22", "a*", "NEAR(a%20b", "a:*", "!!a", "a%20%26%7C%20b", "(", "-", "^a", "a%20OR", "%5C", "'", "%00", "a%00b",
        "%ED%A0%80", "%uD800", "%F0%9F%98%80", "0001-01-01", "9999-12-31T23:59:59.9999999Z", "10000-01-01", "-1", "1e400",
        "99999999999999999999", "2026-13-45", "0001-01-01T00:00:00%2B14:00", "NaN", "%20", "",
        new string('a', 100 * 1024), "%22" + new string('x', 100 * 1024),
    ];

    private DashboardHost _host = null!;
    private Guid _task;
    private Guid _run;

    [SetUp]
    public async Task SetUp()
    {
        _host = await DashboardHost.StartAsync(await Ledgers.CreateAsync(provider));
        _host.Client.Timeout = TimeSpan.FromSeconds(100);
        var task = Rows.Task("Charge", DateTime.UtcNow.AddMinutes(-5), TaskState.Failed, input: "Note=needle");
        var run = Rows.Run(task, 0, TaskRunState.Failed, 0.1, 0.2, error: "System.InvalidOperationException: boom");
        (_task, _run) = (task.Id, run.Id);
        await _host.SeedAsync(task, run);
    }

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    [Test]
    public async Task EveryGetRoute_WithHostileQueryValues_AnswersA400ThatSaysWhyOrA200_NeverA500()
    {
        var routes = GetRoutes();
        Assert.That(routes, Has.Count.GreaterThan(20), "the route table was read");
        var names = await QueryNamesAsync(routes);
        Assert.That(names, Is.SupersetOf(new[] { "q", "cursor", "limit", "from", "to", "since", "state" }));
        TestContext.Out.WriteLine($"{routes.Count} routes, query names: {string.Join(", ", names)}");

        var failures = new List<string>();
        var answers = new Dictionary<HttpStatusCode, int>();
        foreach (var route in routes)
        {
            // A list takes every hostile value in every name; a detail route (its id in the path) takes hostile segments
            // and every name at once.
            var paths = Paths(route).ToList();
            foreach (var name in route.RoutePattern.Parameters.Count == 0 ? names : [])
            {
                foreach (var value in s_values)
                {
                    await ProbeAsync($"{paths[0]}?{name}={value}", answers, failures);
                }
            }

            foreach (var path in paths)
            {
                await ProbeAsync($"{path}?{string.Join("&", names.Select(n => n + "=%22a%22"))}&{string.Join("&", names.Select(n => n + "=NEAR("))}", answers, failures);
                await ProbeAsync($"{path}?{string.Join("&", Enumerable.Repeat("q=a", 2000))}", answers, failures);
                await ProbeAsync($"{path}?{new string('&', 5000)}=%3D=", answers, failures);
            }
        }

        TestContext.Out.WriteLine(string.Join(", ", answers.OrderBy(a => a.Key).Select(a => $"{(int)a.Key}: {a.Value:N0}")));
        Assert.That(failures, Is.Empty);
    }

    [TestCase("/joblog/tasks/zzz")]
    [TestCase("/joblog/tasks/1")]
    [TestCase("/joblog/tasks/%3Cscript%3Ealert(1)%3C%2Fscript%3E")]
    [TestCase("/joblog/tasks/..%2F..%2F..%2Fetc%2Fpasswd")]
    [TestCase("/joblog/requests/in/{00000000-0000-0000-0000-00000000000g}")]
    [TestCase("/joblog/commands/%ED%A0%80")]
    [TestCase("/joblog/failures/retries/zzz")]
    [TestCase("/joblog/nope")]
    [TestCase("/joblog/api/tasks/zzz")]
    [TestCase("/joblog/api/nope")]
    public async Task APathNoRouteTakes_IsA404ThatSaysSo(string path)
    {
        // A mistyped or cut id in a link from an alert: the page says there is no such page (a blank 404 left the
        // browser's own error page); the API answers problem details.
        using var response = await _host.Client.GetAsync(path);
        var body = await response.Content.ReadAsStringAsync();

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), body);
        if (path.StartsWith("/joblog/api/", StringComparison.Ordinal))
        {
            Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));
            Assert.That(JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString(), Does.Contain("No such"));
        }
        else
        {
            Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("text/html"));
            Assert.That(body, Does.Contain("<h1>No such page</h1>"));
            Assert.That(body, Does.Not.Contain("<script>alert"));
        }
    }

    private const string Markup = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>";

    [Test]
    public async Task EveryGetRoute_EchoingMarkupFromTheQueryOrThePath_ShowsItEncoded()
    {
        // A value the page shows back (the search box, a filter's 400, a group's id) is text: never markup, and the API
        // answers JSON whatever the value, never a page.
        var routes = GetRoutes();
        var names = await QueryNamesAsync(routes);
        var markup = Uri.EscapeDataString(Markup);
        var failures = new List<string>();
        var answers = new Dictionary<HttpStatusCode, int>();
        foreach (var route in routes)
        {
            var urls = route.RoutePattern.Parameters.Count == 0
                ? names.Select(name => $"{route.RoutePattern.RawText}?{name}={markup}").Append($"{route.RoutePattern.RawText}?{string.Join("&", names.Select(n => n + "=" + markup))}")
                : [ParameterRegex().Replace(route.RoutePattern.RawText!, markup) + "?q=" + markup];
            foreach (var url in urls)
            {
                using var response = await _host.Client.GetAsync(url);
                var body = await response.Content.ReadAsStringAsync();
                answers[response.StatusCode] = answers.GetValueOrDefault(response.StatusCode) + 1;
                var type = response.Content.Headers.ContentType?.MediaType ?? "";
                var api = route.RoutePattern.RawText!.Contains("/api/", StringComparison.Ordinal);
                if ((int)response.StatusCode >= 500
                    || body.Contains("<script>alert", StringComparison.Ordinal) || body.Contains("<img src=x", StringComparison.Ordinal)
                    || body.Contains("onerror=alert(2)>", StringComparison.Ordinal)
                    || CountOf(body, "<script") > 1
                    || (api && type.Contains("html", StringComparison.Ordinal))
                    || Leak(body) is not null)
                {
                    failures.Add($"GET {url[..Math.Min(url.Length, 200)]}: {(int)response.StatusCode} {type} {Shorten(body)}");
                }
            }
        }

        TestContext.Out.WriteLine(string.Join(", ", answers.OrderBy(a => a.Key).Select(a => $"{(int)a.Key}: {a.Value:N0}")));
        Assert.That(answers.Keys, Does.Contain(HttpStatusCode.BadRequest), "some values were refused, and their 400s shown");
        Assert.That(failures, Is.Empty);
    }

    private static int CountOf(string text, string part)
    {
        var count = 0;
        for (var i = text.IndexOf(part, StringComparison.Ordinal); i >= 0; i = text.IndexOf(part, i + part.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }

    /// <summary>Well-formed values at the ends of what they can say: each is a page (possibly empty), never an error.</summary>
    private static readonly string[] s_edges =
    [
        "cursor=0-" + Guid.Empty.ToString("N"),
        "cursor=1-ffffffffffffffffffffffffffffffff",
        $"cursor={DateTime.MaxValue.Ticks}-ffffffffffffffffffffffffffffffff",
        $"cursor={DateTime.MaxValue.Ticks - 1}-00000000000000000000000000000000",
        "from=0001-01-01T00:00:00Z",
        "to=0001-01-01T00:00:00Z",
        "from=9999-12-31T23:59:59.9999999Z",
        "to=9999-12-31T23:59:59.9999999Z",
        "from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59.9999999Z",
        "from=9999-12-31T23:59:59.9999999Z&to=0001-01-01T00:00:00Z",
        "from=9999-12-31T09:59:59%2B14:00",
        "since=36500d",
        "since=5214w",
        "since=0.000001s",
        "since=36500d&from=0001-01-01",
        "limit=500",
        "limit=1",
        "limit=0500",
    ];

    [Test]
    public async Task EveryList_WithCursorsDatesAndLimitsAtTheEdgesOfTheirRange_AnswersAPage()
    {
        var lists = GetRoutes().Where(r => r.RoutePattern.Parameters.Count == 0).Select(r => r.RoutePattern.RawText!).ToList();
        Assert.That(lists, Does.Contain("/joblog/api/tasks").And.Contain("/joblog/failures"));
        var failures = new List<string>();
        foreach (var list in lists)
        {
            foreach (var edge in s_edges)
            {
                // Also with a search (its own query, through the search index where there is one) and a name (another plan).
                foreach (var url in new[] { $"{list}?{edge}", $"{list}?{edge}&q=needle", $"{list}?{edge}&q=a&name=Charge" })
                {
                    using var response = await _host.Client.GetAsync(url);
                    var body = await response.Content.ReadAsStringAsync();
                    if (response.StatusCode != HttpStatusCode.OK)
                    {
                        failures.Add($"GET {url}: {(int)response.StatusCode} {Shorten(body)}");
                    }
                }
            }
        }

        Assert.That(failures, Is.Empty);
    }

    [Test]
    public async Task EveryRoute_WithAMethodItDoesNotTake_IsA405WithAllow_AndABodyIsNeverRead()
    {
        // A JSON body of 4 MB, one nested 100,000 deep and one of the wrong shape: no dashboard route reads JSON, so none
        // may be parsed, and no method the route does not take may reach its handler.
        var bodies = new Func<HttpContent?>[]
        {
            () => null,
            () => new StringContent("{\"a\":\"" + new string('x', 4 * 1024 * 1024) + "\"}", System.Text.Encoding.UTF8, "application/json"),
            () => new StringContent(new string('[', 100_000) + new string(']', 100_000), System.Text.Encoding.UTF8, "application/json"),
            () => new StringContent("[1, \"two\", {\"scope\": 3}, null]", System.Text.Encoding.UTF8, "application/json"),
        };
        var failures = new List<string>();
        // The routes' own methods (not the one that answers every method where no route does).
        foreach (var route in GetRoutes().Where(r => r.Metadata.GetMetadata<IHttpMethodMetadata>() is not null))
        {
            var path = Paths(route).First();
            foreach (var method in new[] { "POST", "PUT", "DELETE", "PATCH", "TRACE", "PROPFIND", "FOO" })
            {
                foreach (var body in bodies)
                {
                    using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = body() };
                    using var response = await _host.Client.SendAsync(request);
                    var text = await response.Content.ReadAsStringAsync();
                    var allow = response.Content.Headers.Allow.Concat(response.Headers.TryGetValues("Allow", out var a) ? a : []).ToList();
                    if (response.StatusCode != HttpStatusCode.MethodNotAllowed || !string.Join(",", allow).Contains("GET", StringComparison.Ordinal) || Leak(text) is not null)
                    {
                        failures.Add($"{method} {path} ({request.Content?.Headers.ContentLength:N0} bytes): {(int)response.StatusCode} Allow: {string.Join(",", allow)} {Shorten(text)}");
                    }
                }
            }
        }

        Assert.That(failures, Is.Empty);
    }

    [Test]
    public async Task EveryList_WithAQueryStringOfAMegabyte_AnswersA400OrAPage_NeverA500()
    {
        // TestServer has no request-line limit (Kestrel's is 8 KB, an application may raise it): the whole string reaches
        // the filters. Plain text, percent-escaped invalid UTF-8, and as many parameters.
        var megabyte = 1024 * 1024;
        var queries = new[]
        {
            "q=" + new string('a', megabyte),
            "name=" + new string('a', megabyte),
            "cursor=" + new string('9', megabyte) + "-" + Guid.Empty.ToString("N"),
            "since=" + new string('9', megabyte) + "d",
            "state=" + string.Join(",", Enumerable.Repeat("failed", megabyte / 7)),
            "q=" + string.Concat(Enumerable.Repeat("%FF", megabyte / 3)),
            string.Join("&", Enumerable.Repeat("limit=1", megabyte / 8)),
        };
        var answers = new Dictionary<HttpStatusCode, int>();
        var failures = new List<string>();
        foreach (var route in GetRoutes().Where(r => r.RoutePattern.Parameters.Count == 0))
        {
            foreach (var query in queries)
            {
                var url = $"{route.RoutePattern.RawText}?{query}";
                await ProbeAsync(url, answers, failures);
                if (route.RoutePattern.RawText!.Contains("/api/", StringComparison.Ordinal))
                {
                    // The API's 400 says why in a line, not the megabyte back.
                    using var response = await _host.Client.GetAsync(url);
                    var body = await response.Content.ReadAsStringAsync();
                    if (response.StatusCode == HttpStatusCode.BadRequest && body.Length > 2_000)
                    {
                        failures.Add($"GET {url[..100]}…: {(int)response.StatusCode}, {body.Length:N0} characters: {Shorten(body)}");
                    }
                }
            }
        }

        TestContext.Out.WriteLine(string.Join(", ", answers.OrderBy(a => a.Key).Select(a => $"{(int)a.Key}: {a.Value:N0}")));
        Assert.That(failures, Is.Empty);
    }

    private async Task ProbeAsync(string url, Dictionary<HttpStatusCode, int> answers, List<string> failures)
    {
        var shown = url.Length > 200 ? url[..200] + $"… ({url.Length:N0} characters)" : url;
        HttpResponseMessage response;
        try
        {
            response = await _host.Client.GetAsync(url);
        }
        catch (Exception e)
        {
            failures.Add($"GET {shown}: {e.GetType().Name}: {e.Message}");
            return;
        }

        using (response)
        {
            var body = await response.Content.ReadAsStringAsync();
            answers[response.StatusCode] = answers.GetValueOrDefault(response.StatusCode) + 1;
            if ((int)response.StatusCode >= 500)
            {
                failures.Add($"GET {shown}: {(int)response.StatusCode} {Shorten(body)}");
            }
            else if (Leak(body) is { } leak)
            {
                failures.Add($"GET {shown}: {(int)response.StatusCode} shows {leak}: {Shorten(body)}");
            }
            else if (response.StatusCode == HttpStatusCode.BadRequest && !SaysWhy(body))
            {
                failures.Add($"GET {shown}: 400 without a reason: {Shorten(body)}");
            }
            else if (response.StatusCode is not (HttpStatusCode.OK or HttpStatusCode.BadRequest or HttpStatusCode.NotFound or HttpStatusCode.TooManyRequests))
            {
                failures.Add($"GET {shown}: {(int)response.StatusCode} {Shorten(body)}");
            }
        }
    }

    private static bool SaysWhy(string body)
    {
        if (body.TrimStart().StartsWith('{'))
        {
            using var json = JsonDocument.Parse(body);
            return json.RootElement.TryGetProperty("error", out var error) && error.GetString() is { Length: > 5 };
        }

        return body.Contains("class=\"error\"", StringComparison.Ordinal) || body.Contains("role=\"alert\"", StringComparison.Ordinal) || body.Length > 20;
    }

    /// <summary>What the answer shows of the server's inside (a stack frame, the SQL or the database's own words), or null.</summary>
    private static string? Leak(string body) =>
        s_leaks.FirstOrDefault(leak => body.Contains(leak, StringComparison.Ordinal));

    private static readonly string[] s_leaks =
        ["   at ", "at JobLog.", "at Microsoft.", "SELECT ", "Npgsql", "SQLite Error", "PostgresException", "DbUpdateException", "fts5:", "syntax error"];

    private static string Shorten(string body) => body.Length > 300 ? body[..300] + "…" : body;

    /// <summary>The dashboard's GET routes from the application's route table.</summary>
    private List<RouteEndpoint> GetRoutes() =>
        [.. _host.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText?.StartsWith("/joblog", StringComparison.Ordinal) == true)
            .Where(e => e.Metadata.GetMetadata<IHttpMethodMetadata>() is not { } methods || methods.HttpMethods.Contains("GET"))];

    /// <summary>
    /// A route's paths: its parameters as a real id, an absent one and hostile segments (not NUL: TestServer's client
    /// refuses a path with one before it reaches the application, as Kestrel does with a 400).
    /// </summary>
    private IEnumerable<string> Paths(RouteEndpoint route)
    {
        var pattern = route.RoutePattern;
        if (pattern.Parameters.Count == 0)
        {
            yield return pattern.RawText!;
            yield break;
        }

        var values = pattern.Parameters.Any(p => p.ParameterPolicies.Any(c => c.Content == "guid"))
            ? new[] { _task.ToString(), _run.ToString(), Guid.NewGuid().ToString() }
            : new[] { _task.ToString(), "x", "%22NEAR(", "%ED%A0%80", new string('a', 10_000), "..%2F..%2Fetc%2Fpasswd" };
        foreach (var value in values)
        {
            yield return ParameterRegex().Replace(pattern.RawText!, value);
        }
    }

    /// <summary>The query names the pages offer (their forms' fields), and the paging ones.</summary>
    private async Task<List<string>> QueryNamesAsync(List<RouteEndpoint> routes)
    {
        var names = new SortedSet<string>(StringComparer.Ordinal) { "cursor", "limit", "window", "v" };
        foreach (var route in routes.Where(r => r.RoutePattern.Parameters.Count == 0 && !r.RoutePattern.RawText!.Contains("/api", StringComparison.Ordinal)))
        {
            using var response = await _host.Client.GetAsync(route.RoutePattern.RawText);
            foreach (Match match in FieldRegex().Matches(await response.Content.ReadAsStringAsync()))
            {
                names.Add(match.Groups[1].Value);
            }
        }

        return [.. names];
    }

    [GeneratedRegex(@"\{[^}]+\}")]
    private static partial Regex ParameterRegex();

    [GeneratedRegex(@"<(?:input|select)[^>]*\sname=""([a-z_]+)""")]
    private static partial Regex FieldRegex();
}
