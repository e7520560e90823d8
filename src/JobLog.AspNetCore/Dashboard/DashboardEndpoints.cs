using JobLog.AspNetCore.Dashboard.Html;
using JobLog.Querying;
using JobLog.Recording;
using JobLog.Storage;
using JobLog.Sweeping;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace JobLog.AspNetCore.Dashboard;

/// <summary>
/// The dashboard's routes. Every page has a JSON twin under <c>api/</c> that runs the same query with the same filter
/// names, so a script sees exactly the rows a person sees. Every page also answers a request for one of its fragments
/// (<c>X-JobLog-Fragment</c>) with that part of itself, written by the same code: that is what the live refresh swaps in.
/// </summary>
internal static class DashboardEndpoints
{
    public static RouteGroupBuilder Map(IEndpointRouteBuilder endpoints, string prefix, JobLogDashboardOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxConcurrentSearches, 1, "JobLogDashboardOptions.MaxConcurrentSearches");
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxConcurrentQueries, 1, "JobLogDashboardOptions.MaxConcurrentQueries");
        options.Reads = new DashboardReads(options.MaxConcurrentQueries, LedgerReaders.Of(endpoints.ServiceProvider.GetRequiredService<JobLogContextFactory>()));
        var group = endpoints.MapGroup(prefix);
        group.AddEndpointFilter(new DashboardGuard(options));
        group.ExcludeFromDescription();
        // HEAD wherever GET is (a monitor's probe): the same handler; the server sends no body for a HEAD.
        ((IEndpointConventionBuilder)group).Add(endpoint =>
        {
            if (endpoint.Metadata.OfType<HttpMethodMetadata>().LastOrDefault() is { HttpMethods: [var only] } && HttpMethods.IsGet(only))
            {
                endpoint.Metadata.Add(new HttpMethodMetadata([HttpMethods.Get, HttpMethods.Head]));
            }
        });

        DashboardMethodsEndpoint.Map(endpoints, group, prefix, options);
        group.MapGet("/assets/{name}", Asset);

        group.MapGet("/", (HttpContext http, CancellationToken ct) => Page(http, prefix, options, async page =>
        {
            var (day, error) = Window(http);
            return error is null
                ? Html(OverviewPage.Render(page, await OverviewAsync(http, page.Now, day, ct).ConfigureAwait(false)))
                : Html(OverviewPage.Unread(page, error), error);
        }));
        group.MapGet("/api/overview", async (HttpContext http, CancellationToken ct) =>
        {
            var (day, error) = Window(http);
            return error is null
                ? Json(await OverviewAsync(http, Now(http), day, ct).ConfigureAwait(false))
                : Problem(StatusCodes.Status400BadRequest, error);
        });

        MapList<TaskFilter, TaskRow>(group, prefix, options, "/tasks", TaskFilter.Parse, q => q.TasksAsync, async (page, filter, rows, error, ct) =>
        {
            // The names fill the form's suggestions; the live refresh asks for the list alone and needs none.
            var names = page.Fragment == Layout.ListFragment ? [] : await Queries(page.Http).RecentTaskNamesAsync(ct).ConfigureAwait(false);
            return TaskPages.List(page, filter, rows, names, error);
        });
        group.MapGet("/tasks/{id:guid}", (HttpContext http, Guid id, CancellationToken ct) => Page(http, prefix, options, async page =>
            await Queries(http).TaskAsync(id, ct).ConfigureAwait(false) is { } d ? Html(TaskPages.Detail(page, d)) : NotFoundPage(page, "task")));
        group.MapGet("/api/tasks/{id:guid}", async (HttpContext http, Guid id, CancellationToken ct) =>
            JsonOrNotFound(await Queries(http).TaskAsync(id, ct).ConfigureAwait(false) is { } d ? TaskDetailDocument.From(d) : null));

        MapList<RequestFilter, RequestRow>(group, prefix, options, "/requests/in", RequestFilter.Parse, q => q.InputRequestsAsync, (page, _, rows, error, _) =>
            Task.FromResult(RequestPages.List(page, inbound: true, rows, page.Http.Request.Query.Count > 0, error)));
        group.MapGet("/requests/in/{id:guid}", (HttpContext http, Guid id, CancellationToken ct) => Page(http, prefix, options, async page =>
            await Queries(http).InputRequestAsync(id, ct).ConfigureAwait(false) is { } d ? Html(RequestPages.InputDetail(page, d)) : NotFoundPage(page, "inbound request")));
        group.MapGet("/api/requests/in/{id:guid}", async (HttpContext http, Guid id, CancellationToken ct) =>
            JsonOrNotFound(await Queries(http).InputRequestAsync(id, ct).ConfigureAwait(false) is { } d ? InputRequestDetailDocument.From(d) : null));

        MapList<RequestFilter, RequestRow>(group, prefix, options, "/requests/out", RequestFilter.Parse, q => q.OutputRequestsAsync, (page, _, rows, error, _) =>
            Task.FromResult(RequestPages.List(page, inbound: false, rows, page.Http.Request.Query.Count > 0, error)));
        group.MapGet("/requests/out/{id:guid}", (HttpContext http, Guid id, CancellationToken ct) => Page(http, prefix, options, async page =>
            await Queries(http).OutputRequestAsync(id, ct).ConfigureAwait(false) is { } d ? Html(RequestPages.OutputDetail(page, d)) : NotFoundPage(page, "outbound request")));
        group.MapGet("/api/requests/out/{id:guid}", async (HttpContext http, Guid id, CancellationToken ct) =>
            JsonOrNotFound(await Queries(http).OutputRequestAsync(id, ct).ConfigureAwait(false) is { } d ? OutputRequestDetailDocument.From(d) : null));

        MapList<CommandFilter, CommandRow>(group, prefix, options, "/commands", CommandFilter.Parse, q => q.CommandsAsync, (page, _, rows, error, _) =>
            Task.FromResult(CommandPages.List(page, rows, page.Http.Request.Query.Count > 0, error)));
        group.MapGet("/commands/{id:guid}", (HttpContext http, Guid id, CancellationToken ct) => Page(http, prefix, options, async page =>
            await Queries(http).CommandAsync(id, ct).ConfigureAwait(false) is { } d ? Html(CommandPages.Detail(page, d)) : NotFoundPage(page, "command")));
        group.MapGet("/api/commands/{id:guid}", async (HttpContext http, Guid id, CancellationToken ct) =>
            JsonOrNotFound(await Queries(http).CommandAsync(id, ct).ConfigureAwait(false) is { } d ? CommandDetailDocument.From(d) : null));

        // Without filters the page shows every live host and the latest gone ones (a deployment that restarts often has
        // thousands of stopped instances); with any, and in the API, a page of them at a time.
        group.MapGet("/hosts", (HttpContext http, CancellationToken ct) => Page(http, prefix, options, async page =>
        {
            var ledger = LedgerOptions(http);
            if (!HostFilterNames.Any(name => http.Request.Query.ContainsKey(name)))
            {
                return Html(HostPages.Overview(page, await Queries(http).HostOverviewAsync(
                    ledger.HeartbeatInterval, ledger.HostTimeout, page.Now, HostPages.GoneShown, ct).ConfigureAwait(false), ledger.HostTimeout));
            }

            var (filter, error) = TryParse(page, p => HostFilter.Parse(p, page.Now));
            var hosts = filter is null ? null
                : await Queries(http).HostsAsync(filter, ledger.HeartbeatInterval, ledger.HostTimeout, page.Now, ct).ConfigureAwait(false);
            return Html(HostPages.List(page, hosts, ledger.HostTimeout, error), error);
        }));
        group.MapGet("/api/hosts", async (HttpContext http, CancellationToken ct) =>
        {
            HostFilter filter;
            try
            {
                filter = WithPageSize(HostFilter.Parse(name => http.Request.Query[name].ToString(), Now(http)), http, options);
            }
            catch (FilterException ex)
            {
                return Problem(StatusCodes.Status400BadRequest, ex.Message);
            }

            var ledger = LedgerOptions(http);
            return Json(await Queries(http).HostsAsync(filter, ledger.HeartbeatInterval, ledger.HostTimeout, Now(http), ct).ConfigureAwait(false));
        });

        if (options.EnableActions)
        {
            group.MapPost("/tasks/{id:guid}/actions/{action}", (HttpContext http, Guid id, string action, CancellationToken ct) =>
                TaskActionAsync(http, options, id, action, ct));
        }

        DashboardFailureEndpoints.Map(group, prefix, options);
        return group;
    }

    private static IResult Asset(HttpContext http, string name)
    {
        if (!DashboardAssets.TryGet(name, out var content, out var contentType))
        {
            return Results.NotFound();
        }

        http.Response.Headers.CacheControl = http.Request.Query.ContainsKey("v") ? "public, max-age=31536000, immutable" : "public, max-age=300";
        return Results.Bytes(content, contentType);
    }

    /// <summary>
    /// Maps a list: the page at <paramref name="path"/> (which also answers its fragments, see
    /// <see cref="PageContext.Fragment"/>) and its JSON twin at <c>api/</c>, both from the same filter and query.
    /// </summary>
    private static void MapList<TFilter, TRow>(
        RouteGroupBuilder group,
        string prefix,
        JobLogDashboardOptions options,
        string path,
        Func<FilterSource, DateTime, TFilter> parse,
        Func<LedgerQueries, Func<TFilter, CancellationToken, Task<Page<TRow>>>> query,
        Func<PageContext, TFilter?, Page<TRow>, string?, CancellationToken, Task<string>> render)
        where TFilter : ListFilter
    {
        group.MapGet(path, (HttpContext http, CancellationToken ct) => Page(http, prefix, options, async page =>
        {
            var (filter, error) = TryParse(page, p => parse(p, page.Now));
            var (rows, busy) = await LimitedAsync(filter, options, query(Queries(http)), ct).ConfigureAwait(false);
            return Html(await render(page, filter, rows, error ?? busy, ct).ConfigureAwait(false), error, busy);
        }));
        group.MapGet("/api" + path, (HttpContext http, CancellationToken ct) => Api(http, options, parse, query(Queries(http)), ct));
    }

    internal static async Task<IResult> Page(HttpContext http, string prefix, JobLogDashboardOptions options, Func<PageContext, Task<IResult>> render)
    {
        var page = new PageContext(http, prefix, options, Now(http));
        if (options.Actions.Enabled)
        {
            page.Operator = await DashboardFailureEndpoints.OperatorAsync(http, options).ConfigureAwait(false);
        }

        http.Response.Headers.Vary = PageContext.FragmentHeader;
        return await render(page).ConfigureAwait(false);
    }

    internal static IResult Html(string html, string? error = null, string? busy = null)
    {
        if (busy is not null && error is null)
        {
            return new BusyResult(Results.Content(html, "text/html; charset=utf-8", statusCode: StatusCodes.Status429TooManyRequests));
        }

        return Results.Content(html, "text/html; charset=utf-8", statusCode: error is null ? StatusCodes.Status200OK : StatusCodes.Status400BadRequest);
    }

    internal const string Busy = "Too many searches are running; try again in a moment.";

    /// <summary>
    /// Runs a list query; one with a free-text search takes a slot of <see cref="JobLogDashboardOptions.MaxConcurrentSearches"/>
    /// first, and when none is free the rows are empty and <c>Busy</c> says why (a 429).
    /// </summary>
    private static async Task<(Page<TRow> Rows, string? Busy)> LimitedAsync<TFilter, TRow>(
        TFilter? filter, JobLogDashboardOptions options, Func<TFilter, CancellationToken, Task<Page<TRow>>> query, CancellationToken ct)
        where TFilter : ListFilter
    {
        if (filter is null)
        {
            return (new Page<TRow>([], null), null);
        }

        if (filter.Search is null)
        {
            return (await query(filter, ct).ConfigureAwait(false), null);
        }

        using var slot = options.Searches.TryEnter();
        return slot is null ? (new Page<TRow>([], null), Busy) : (await query(filter, ct).ConfigureAwait(false), null);
    }

    /// <summary>A 429 with <c>Retry-After: 1</c>.</summary>
    internal sealed class BusyResult(IResult inner) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.Headers.RetryAfter = "1";
            return inner.ExecuteAsync(httpContext);
        }
    }

    internal static IResult NotFoundPage(PageContext page, string what, string why = "It is not in the ledger (it may have been purged).") =>
        Results.Content(Layout.Render(page, "Not found", "", h => h.Add($"<div class=\"page-head\"><h1>No such {what}</h1></div><p class=\"muted\">{why}</p><p><a href=\"{page.Base}\">Back to the overview</a></p>")),
            "text/html; charset=utf-8", statusCode: StatusCodes.Status404NotFound);

    internal static IResult Json(object value) => Results.Json(value, DashboardJson.Options);

    internal static IResult JsonOrNotFound(object? value) =>
        value is null ? Problem(StatusCodes.Status404NotFound, "Not found.") : Json(value);

    /// <summary>
    /// An API error as RFC 9457 problem details (<c>application/problem+json</c>, as ASP.NET Core writes its own):
    /// <c>title</c>, <c>status</c> and <c>detail</c>, and <c>error</c>, the detail again under the name JobLog's API used first.
    /// </summary>
    internal static IResult Problem(int status, string detail) =>
        Results.Json(new ApiProblem(ReasonPhrases.GetReasonPhrase(status), status, detail, detail), DashboardJson.Options, "application/problem+json", status);

    internal sealed record ApiProblem(string Title, int Status, string Detail, string Error)
    {
        public string Type => "about:blank";
    }

    internal static (T? Filter, string? Error) TryParse<T>(PageContext page, Func<FilterSource, T> parse)
        where T : ListFilter
    {
        try
        {
            return (WithPageSize(parse(name => page.Query(name)), page.Http, page.Options), null);
        }
        catch (FilterException ex)
        {
            return (null, ex.Message);
        }
    }

    private static async Task<IResult> Api<TFilter, TRow>(
        HttpContext http,
        JobLogDashboardOptions options,
        Func<FilterSource, DateTime, TFilter> parse,
        Func<TFilter, CancellationToken, Task<Page<TRow>>> query,
        CancellationToken ct)
        where TFilter : ListFilter
    {
        TFilter filter;
        try
        {
            filter = WithPageSize(parse(name => http.Request.Query[name].ToString(), Now(http)), http, options);
        }
        catch (FilterException ex)
        {
            return Problem(StatusCodes.Status400BadRequest, ex.Message);
        }

        var (rows, busy) = await LimitedAsync(filter, options, query, ct).ConfigureAwait(false);
        return busy is null
            ? Json(rows)
            : new BusyResult(Problem(StatusCodes.Status429TooManyRequests, busy));
    }

    internal static T WithPageSize<T>(T filter, HttpContext http, JobLogDashboardOptions options)
        where T : ListFilter =>
        // An empty limit (?limit=) is no limit, as the filters read it: the configured page size.
        !string.IsNullOrWhiteSpace(http.Request.Query["limit"]) ? filter : filter with { Limit = Math.Clamp(options.PageSize, 1, ListFilter.MaxLimit) };

    /// <summary>The overview's window, read alike by its page and its API: none or <c>hour</c>, <c>day</c>, else the 400's reason.</summary>
    private static (bool Day, string? Error) Window(HttpContext http) => http.Request.Query["window"].ToString() switch
    {
        "" or "hour" => (false, null),
        "day" => (true, null),
        var window => (false, $"'window' must be hour or day, not '{FilterException.Shown(window)}'."),
    };

    private static async Task<Overview> OverviewAsync(HttpContext http, DateTime now, bool day, CancellationToken ct)
    {
        var services = http.RequestServices;
        var (counts, chart, slowest) = await Queries(http).OverviewAsync(day, now, ct).ConfigureAwait(false);
        var recorder = services.GetRequiredService<LedgerRecorder>();
        var sweeperEnabled = services.GetRequiredService<IOptions<JobLogOptions>>().Value.Sweeper.Enabled;
        var last = services.GetService<TaskLogSweeper>()?.LastSweep;
        return new Overview(
            counts,
            counts.Sum(c => c.Count),
            chart,
            slowest,
            new SweepInfo(sweeperEnabled, last?.At, last?.Result.Expired, last?.Result.Healed),
            new WriterInfo(recorder.Backlog, recorder.IsFailing, recorder.Dropped, recorder.LastFailure, recorder.FailingSince),
            now);
    }

    private static async Task<IResult> TaskActionAsync(HttpContext http, JobLogDashboardOptions options, Guid id, string name, CancellationToken ct)
    {
        // A custom header cannot be sent cross-site without a CORS preflight, which the dashboard never grants; but an
        // application's CORS policy may (AllowAnyOrigin, AllowAnyHeader). Then Sec-Fetch-Site tells, or, from a browser
        // that does not send it, the Origin every cross-origin POST carries.
        var fetchSite = http.Request.Headers["Sec-Fetch-Site"].ToString();
        var origin = http.Request.Headers.Origin.ToString();
        if (http.Request.Headers["X-JobLog-Action"] != "1"
            || (fetchSite.Length > 0 ? fetchSite != "same-origin" : origin.Length > 0 && !DashboardGuard.IsSameOrigin(origin, http.Request)))
        {
            return Problem(StatusCodes.Status403Forbidden, "Actions are only accepted from the dashboard's own pages.");
        }

        var action = options.TaskActions.FirstOrDefault(a => string.Equals(a.Name, name, StringComparison.OrdinalIgnoreCase));
        var detail = await Queries(http).TaskAsync(id, ct).ConfigureAwait(false);
        if (action is null || detail is null)
        {
            return Problem(StatusCodes.Status404NotFound, "No such task or action.");
        }

        if (!action.IsAvailable(detail))
        {
            return Problem(StatusCodes.Status409Conflict, $"'{action.Label}' is not available for this task.");
        }

        try
        {
            return Json(new { message = await action.ExecuteAsync(http, detail, ct).ConfigureAwait(false) });
        }
        catch (InvalidOperationException ex)
        {
            return Problem(StatusCodes.Status409Conflict, ex.Message);
        }
    }

    /// <summary>The names of the hosts list's filters: any of them in the query makes the Hosts page a paginated list.</summary>
    private static readonly string[] HostFilterNames = ["state", "name", "since", "from", "to", "q", "cursor", "limit"];

    private static JobLogOptions LedgerOptions(HttpContext http) => http.RequestServices.GetRequiredService<IOptions<JobLogOptions>>().Value;

    /// <summary>
    /// The request's queries, on the dashboard's own connections; the first call takes the request's slot of
    /// <see cref="JobLogDashboardOptions.MaxConcurrentQueries"/> (<see cref="DashboardBusyException"/>, a 429, when none is free).
    /// </summary>
    internal static LedgerQueries Queries(HttpContext http) => Read(http).Queries;

    /// <summary>
    /// Takes the request's slot of <see cref="JobLogDashboardOptions.MaxConcurrentQueries"/> for a read (or a write) that
    /// goes through another service than <see cref="Queries"/> (the failure actions, a retry's progress).
    /// </summary>
    /// <exception cref="DashboardBusyException">Every slot is taken (a 429).</exception>
    internal static void TakeSlot(HttpContext http) => Read(http).Enter();

    private static DashboardRead Read(HttpContext http) =>
        http.Items[typeof(DashboardRead)] as DashboardRead ?? throw new InvalidOperationException("A dashboard endpoint runs behind its guard.");

    internal static DateTime Now(HttpContext http) =>
        (http.RequestServices.GetService<TimeProvider>() ?? TimeProvider.System).GetUtcNow().UtcDateTime;
}
