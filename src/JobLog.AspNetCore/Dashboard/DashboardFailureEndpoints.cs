using JobLog.AspNetCore.Dashboard.Html;
using JobLog.Failures;
using JobLog.Querying;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using static JobLog.AspNetCore.Dashboard.DashboardEndpoints;

namespace JobLog.AspNetCore.Dashboard;

/// <summary>
/// The Failures pages and their JSON twins (groups, one group's failures, a retry's progress), and, for operators, the
/// actions: POSTs that pass the operators' policy and ASP.NET Core antiforgery, then act through the application's
/// <see cref="IFailureActions"/>.
/// </summary>
internal static class DashboardFailureEndpoints
{
    public static void Map(RouteGroupBuilder group, string prefix, JobLogDashboardOptions options)
    {
        group.MapGet("/failures", (HttpContext http, CancellationToken ct) => Page(http, prefix, options, async page =>
        {
            var (filter, error) = TryParse(page, p => FailureFilter.Parse(p, page.Now));
            using var slot = SearchSlot(filter, options, out var busy);
            if (busy)
            {
                return DashboardEndpoints.Html(FailurePages.List(page, null, Busy), busy: Busy);
            }

            var groups = filter is null ? null : await Queries(http).FailureGroupsAsync(filter, page.Now, ct).ConfigureAwait(false);
            return DashboardEndpoints.Html(FailurePages.List(page, groups, error), error);
        }));
        group.MapGet("/api/failures", async (HttpContext http, CancellationToken ct) =>
        {
            if (await ParseApi(http, options) is not { } f)
            {
                return BadFilter(http);
            }

            using var slot = SearchSlot(f, options, out var busy);
            return busy ? BusyJson() : Json(await Queries(http).FailureGroupsAsync(f, Now(http), ct).ConfigureAwait(false));
        });

        group.MapGet("/failures/groups/{id}", (HttpContext http, string id, CancellationToken ct) => Page(http, prefix, options, async page =>
        {
            var (filter, error) = TryParse(page, p => FailureFilter.ParseGroup(id, p, page.Now));
            if (filter is null)
            {
                return DashboardEndpoints.Html(FailurePages.Group(page, id, null, new Page<FailureRow>([], null), error), error);
            }

            using var slot = SearchSlot(filter, options, out var busy);
            if (busy)
            {
                return DashboardEndpoints.Html(FailurePages.Group(page, id, null, new Page<FailureRow>([], null), Busy), busy: Busy);
            }

            var queries = Queries(http);
            var summary = await queries.FailureGroupsAsync(filter with { After = null, Limit = 1 }, page.Now, ct).ConfigureAwait(false);
            var rows = await queries.FailuresAsync(filter, ct).ConfigureAwait(false);
            return DashboardEndpoints.Html(FailurePages.Group(page, id, summary.Groups.FirstOrDefault(), rows, null));
        }));
        group.MapGet("/api/failures/groups/{id}", async (HttpContext http, string id, CancellationToken ct) =>
        {
            if (await ParseApi(http, options, id) is not { } f)
            {
                return BadFilter(http);
            }

            using var slot = SearchSlot(f, options, out var busy);
            return busy ? BusyJson() : Json(await Queries(http).FailuresAsync(f, ct).ConfigureAwait(false));
        });

        group.MapGet("/failures/retries/{requestId:guid}", (HttpContext http, Guid requestId, CancellationToken ct) => Page(http, prefix, options, async page =>
            await ProgressAsync(http, requestId, ct).ConfigureAwait(false) is { } p ? DashboardEndpoints.Html(FailurePages.Progress(page, p)) : NotFoundPage(page, "retry")));
        group.MapGet("/api/failures/retries/{requestId:guid}", async (HttpContext http, Guid requestId, CancellationToken ct) =>
            JsonOrNotFound(await ProgressAsync(http, requestId, ct).ConfigureAwait(false)));

        if (!options.Actions.Enabled)
        {
            group.MapPost("/failures/actions/{action}", () => Forbidden("Failure actions are off: the dashboard is read-only (see JobLogDashboardOptions.Actions)."));
            return;
        }

        group.MapGet("/api/failures/token", async (HttpContext http) =>
        {
            if (!await IsOperatorAsync(http, options).ConfigureAwait(false))
            {
                return Forbidden("Only operators act on failures.");
            }

            var tokens = http.RequestServices.GetRequiredService<IAntiforgery>().GetAndStoreTokens(http);
            return Json(new { header = tokens.HeaderName, field = tokens.FormFieldName, token = tokens.RequestToken });
        });
        group.MapPost("/failures/actions/{action}", (HttpContext http, string action, CancellationToken ct) => ActAsync(http, prefix, options, action, ct))
            .DisableAntiforgery();
    }

    /// <summary>The operator's token and whether actions can run, or null when the user does not pass the policy.</summary>
    public static async Task<FailureOperator?> OperatorAsync(HttpContext http, JobLogDashboardOptions options)
    {
        if (!await IsOperatorAsync(http, options).ConfigureAwait(false))
        {
            return null;
        }

        var tokens = http.RequestServices.GetRequiredService<IAntiforgery>().GetAndStoreTokens(http);
        return new FailureOperator(tokens.FormFieldName, tokens.RequestToken ?? "", http.RequestServices.GetService<IFailureActions>() is not null);
    }

    private static async Task<bool> IsOperatorAsync(HttpContext http, JobLogDashboardOptions options) =>
        options.Actions.Policy is { } policy
        && http.RequestServices.GetService<IAuthorizationService>() is { } authorization
        && (await authorization.AuthorizeAsync(http.User, policy).ConfigureAwait(false)).Succeeded;

    private static async Task<IResult> ActAsync(HttpContext http, string prefix, JobLogDashboardOptions options, string action, CancellationToken ct)
    {
        // Who first (a reader gets 403 whatever they send), then the token, then what.
        if (!await IsOperatorAsync(http, options).ConfigureAwait(false))
        {
            return Forbidden("Only operators act on failures.");
        }

        try
        {
            await http.RequestServices.GetRequiredService<IAntiforgery>().ValidateRequestAsync(http).ConfigureAwait(false);
        }
        catch (AntiforgeryValidationException)
        {
            return Error(StatusCodes.Status400BadRequest, "The request has no valid antiforgery token: reload the page (API clients: GET api/failures/token and send its header).");
        }

        FailureResolution? resolution = action switch
        {
            "retry" => null,
            "resolve" => FailureResolution.Resolved,
            "archive" => FailureResolution.Archived,
            _ => (FailureResolution)(-1),
        };
        if (resolution is (FailureResolution)(-1))
        {
            return Error(StatusCodes.Status404NotFound, "No such action: retry, resolve or archive.");
        }

        if (http.RequestServices.GetService<IFailureActions>() is not { } actions)
        {
            return Error(StatusCodes.Status503ServiceUnavailable, "Retry and resolve are not available: the application registered no IFailureActions.");
        }

        // A body that is not a form (JSON, none) or a form beyond the server's limits is the client's error, not a 500.
        if (!http.Request.HasFormContentType)
        {
            return Error(StatusCodes.Status400BadRequest, "Send the action as a form (application/x-www-form-urlencoded or multipart/form-data).");
        }

        IFormCollection form;
        try
        {
            // As many task values as an action may name (MaxTasksPerAction; the server's default allows 1,024 values),
            // and a few other fields; beyond that the form is refused below.
            form = await http.Request.ReadFormAsync(
                new FormOptions { ValueCountLimit = Math.Max(new FormOptions().ValueCountLimit, options.Actions.MaxTasksPerAction + 16) }, ct).ConfigureAwait(false);
        }
        catch (InvalidDataException ex)
        {
            return Error(StatusCodes.Status400BadRequest, "The form cannot be read: " + ex.Message);
        }
        catch (BadHttpRequestException ex)
        {
            // The server's own refusal of the body (Kestrel: larger than MaxRequestBodySize, 413; cut short, 400).
            return Error(ex.StatusCode, "The form cannot be read: " + ex.Message);
        }
        catch (IOException) when (!http.RequestAborted.IsCancellationRequested)
        {
            // A multipart body that ends before its closing boundary: the reader's IOException ("Unexpected end of
            // Stream…") is the client's error, not a 500. A client that left gets no answer anyway.
            return Error(StatusCodes.Status400BadRequest, "The form cannot be read: its body ends before the form does (a multipart body without its closing boundary).");
        }

        var note = form["note"].ToString().Trim();
        if (note.Length > options.Actions.MaxNoteLength)
        {
            return Error(StatusCodes.Status400BadRequest, $"The note must be at most {options.Actions.MaxNoteLength} characters.");
        }

        IReadOnlyList<Guid> ids;
        string selection;
        switch (form["scope"].ToString())
        {
            case "tasks":
                var values = form["task"];
                if (values.Count == 0 || values.Count > options.Actions.MaxTasksPerAction)
                {
                    return Error(StatusCodes.Status400BadRequest, $"Select 1 to {options.Actions.MaxTasksPerAction} failures.");
                }

                var parsed = new List<Guid>(values.Count);
                foreach (var value in values)
                {
                    if (!Guid.TryParse(value, out var id))
                    {
                        return Error(StatusCodes.Status400BadRequest, "'task' must be task ids.");
                    }

                    parsed.Add(id);
                }

                ids = parsed.Distinct().ToList();
                selection = ids.Count == 1 ? "task " + ids[0] : ids.Count + " selected failures";
                break;
            case "filter":
                FailureFilter filter;
                try
                {
                    filter = FailureFilter.Parse(name => form[name].ToString(), Now(http));
                }
                catch (FilterException ex)
                {
                    return Error(StatusCodes.Status400BadRequest, ex.Message);
                }

                ids = await Queries(http).OpenFailureIdsAsync(filter, options.Actions.MaxTasksPerAction, ct).ConfigureAwait(false);
                selection = (filter.Group is null ? "filter " : "group ") + filter.Describe();
                break;
            default:
                return Error(StatusCodes.Status400BadRequest, "'scope' must be tasks or filter.");
        }

        // The actions read and write the ledger through its own pool: as many at once as the dashboard's other reads, no more.
        TakeSlot(http);
        var request = new FailureActionRequest(ids, UserName(http)) { Note = note.Length == 0 ? null : note, Selection = selection };
        var receipt = resolution is { } r
            ? await actions.ResolveAsync(request, r, ct).ConfigureAwait(false)
            : await actions.RetryAsync(request, ct).ConfigureAwait(false);
        if (receipt.Accepted == 0)
        {
            // As the CLI's exit code 3: a double submit (the task's retry is pending), a task that is not in the ledger
            // (never was, or purged) or not failed. The refused action is recorded all the same, with each task's reason.
            var verb = resolution switch { null => "retried", FailureResolution.Resolved => "resolved", _ => "archived" };
            return Error(StatusCodes.Status409Conflict,
                $"Nothing was {verb}: each of the {receipt.Skipped} selected tasks was skipped (not in the ledger, not failed, already being retried, or no kept message to retry). The refused action is recorded as {receipt.RequestId}.");
        }

        var progressUrl = http.Request.PathBase + prefix + "/failures/retries/" + receipt.RequestId;
        if (WantsJson(http))
        {
            return Json(new { receipt.RequestId, receipt.Accepted, receipt.Skipped, progress = resolution is null ? progressUrl : null });
        }

        if (resolution is null)
        {
            return Results.Redirect(progressUrl, permanent: false, preserveMethod: false);
        }

        var page = new PageContext(http, prefix, options, Now(http));
        return DashboardEndpoints.Html(FailurePages.Done(page, resolution == FailureResolution.Resolved ? "Resolved" : "Archived", receipt));
    }

    private static async Task<RetryProgress?> ProgressAsync(HttpContext http, Guid requestId, CancellationToken ct)
    {
        if (http.RequestServices.GetService<IFailureActions>() is not { } actions)
        {
            return null;
        }

        TakeSlot(http);
        return await actions.GetRetryProgressAsync(requestId, ct).ConfigureAwait(false);
    }

    private static string UserName(HttpContext http) =>
        http.User.Identity is { IsAuthenticated: true } identity ? identity.Name ?? "(unnamed user)" : "(anonymous)";

    private static bool WantsJson(HttpContext http) =>
        http.Request.Headers.Accept.ToString().Contains("application/json", StringComparison.OrdinalIgnoreCase);

    private static Task<FailureFilter?> ParseApi(HttpContext http, JobLogDashboardOptions options, string? group = null)
    {
        try
        {
            FilterSource query = name => http.Request.Query[name].ToString();
            var filter = group is null ? FailureFilter.Parse(query, Now(http)) : FailureFilter.ParseGroup(group, query, Now(http));
            return Task.FromResult<FailureFilter?>(WithPageSize(filter, http, options));
        }
        catch (FilterException ex)
        {
            http.Items[typeof(FilterException)] = ex.Message;
            return Task.FromResult<FailureFilter?>(null);
        }
    }

    /// <summary>
    /// A search (<c>q</c>) reads every open failure, up to <see cref="LedgerQueries.MaxFailuresScanned"/> with its error,
    /// and filters in memory: it takes a slot of <see cref="JobLogDashboardOptions.MaxConcurrentSearches"/> like the
    /// other lists' searches. <paramref name="busy"/> is true when none is free (a 429).
    /// </summary>
    private static IDisposable? SearchSlot(FailureFilter? filter, JobLogDashboardOptions options, out bool busy)
    {
        if (filter?.Search is null)
        {
            busy = false;
            return null;
        }

        var slot = options.Searches.TryEnter();
        busy = slot is null;
        return slot;
    }

    private static IResult BusyJson() =>
        new BusyResult(DashboardEndpoints.Problem(StatusCodes.Status429TooManyRequests, Busy));

    private static IResult BadFilter(HttpContext http) =>
        Error(StatusCodes.Status400BadRequest, http.Items[typeof(FilterException)] as string ?? "Bad filter.");

    private static IResult Forbidden(string message) => Error(StatusCodes.Status403Forbidden, message);

    private static IResult Error(int status, string message) => DashboardEndpoints.Problem(status, message);
}
