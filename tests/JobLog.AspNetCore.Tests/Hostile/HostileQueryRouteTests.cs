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
