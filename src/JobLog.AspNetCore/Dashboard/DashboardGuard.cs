using System.Data.Common;
using System.Net;
using JobLog.Internal;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace JobLog.AspNetCore.Dashboard;

/// <summary>
/// Runs before every dashboard endpoint: sets the security headers and, unless the application put an authorization
/// policy on the dashboard, serves loopback requests only (403 for the rest), as Hangfire's
/// <c>LocalRequestsOnlyAuthorizationFilter</c> does. With a policy, ASP.NET Core's authorization middleware has
/// already decided by the time this runs.
/// </summary>
internal sealed class DashboardGuard(JobLogDashboardOptions options) : IEndpointFilter
{
    /// <summary>No inline script or style, no plug-ins, no framing, requests and forms to this origin only.</summary>
    public const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

    private SteadyRate? _unavailable;

    /// <summary>
    /// Before the 403's text when the request had no <c>Host</c> (HTTP/1.0 allows that): a missing host is not a
    /// loopback name (DNS rebinding), and "only answers local requests" alone did not say what was missing.
    /// </summary>
    internal const string NoHost = "The request has no Host header (send Host: localhost or 127.0.0.1). ";

    internal const string LedgerUnavailable = "The ledger cannot be read now (its database is down, or its schema is not migrated yet); try again in a moment.";

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var headers = http.Response.Headers;
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        headers.XFrameOptions = "DENY";
        headers["Referrer-Policy"] = "no-referrer";
        headers["Cross-Origin-Opener-Policy"] = "same-origin";
        headers["Cross-Origin-Resource-Policy"] = "same-origin";
        headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=()";
        headers.CacheControl = "no-store";

        if (!HasAuthorizationPolicy(http) && !IsLocal(http))
        {
            return Results.Text(
                (http.Request.Host.HasValue ? "" : NoHost)
                + "The JobLog dashboard only answers local requests. Add an authorization policy to open it to others: app.MapJobLogDashboard().RequireAuthorization(...).",
                "text/plain; charset=utf-8",
                statusCode: StatusCodes.Status403Forbidden);
        }

        if (IsOtherSitesScript(http))
        {
            return Results.Text(
                "The JobLog dashboard does not answer other sites' scripts. To let one read it, put a CORS policy on the dashboard: app.MapJobLogDashboard().RequireCors(...).",
                "text/plain; charset=utf-8",
                statusCode: StatusCodes.Status403Forbidden);
        }

        await using var read = new DashboardRead(options.Reads, http);
        http.Items[typeof(DashboardRead)] = read;
        try
        {
            return await next(context).ConfigureAwait(false);
        }
        catch (DashboardBusyException ex)
        {
            // Every read slot is taken: refused at once rather than queued (a queue would hold the request, and its
            // client's retry would add another).
            headers.RetryAfter = "1";
            return IsApi(http)
                ? DashboardEndpoints.Problem(StatusCodes.Status429TooManyRequests, ex.Message)
                : Results.Text(ex.Message, "text/plain; charset=utf-8", statusCode: StatusCodes.Status429TooManyRequests);
        }
        catch (Exception ex) when (!http.RequestAborted.IsCancellationRequested && LedgerFailure(ex) is { } failure)
        {
            // The database down, or its schema not there yet (a start-up whose migration went on in the background): the
            // page says so and asks to come back, instead of an unhandled exception (a 500 with the database's words).
            var rate = LazyInitializer.EnsureInitialized(
                ref _unavailable, () => new SteadyRate(http.RequestServices.GetService<TimeProvider>() ?? TimeProvider.System, TimeSpan.FromSeconds(10)));
            if (rate.Add(1, out var count))
            {
                Requests.Log.DashboardLedgerUnavailable(http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("JobLog.Dashboard"), ex, count, http.Request.Path);
            }

            headers.RetryAfter = "5";
            var text = failure.InnerException is TimeoutException ? LedgerTooSlow : LedgerUnavailable;
            return IsApi(http)
                ? DashboardEndpoints.Problem(StatusCodes.Status503ServiceUnavailable, text)
                : Results.Text(text, "text/plain; charset=utf-8", statusCode: StatusCodes.Status503ServiceUnavailable);
        }
    }

    internal const string LedgerTooSlow = "The ledger did not answer this request within its command timeout (a slow query, or a lock held); try again in a moment, or narrow the filter.";

    /// <summary>
    /// The database's exception when <paramref name="exception"/> is one: a <see cref="DbException"/>, or EF Core's
    /// "transient failure" <see cref="InvalidOperationException"/> around one (its execution strategy's answer to a
    /// command timeout or a connection broken mid-query).
    /// </summary>
    private static DbException? LedgerFailure(Exception exception) => exception switch
    {
        DbException db => db,
        InvalidOperationException { InnerException: DbException db } => db,
        _ => null,
    };

    private static bool IsApi(HttpContext http) =>
        http.GetEndpoint() is RouteEndpoint { RoutePattern.RawText: { } route } && route.Contains("/api/", StringComparison.Ordinal);

    /// <summary>
    /// A request from another origin's script (a CORS request: it carries <c>Origin</c>; navigations by GET do not, so
    /// links from alerts still open), unless the application put a CORS policy on the dashboard itself. <c>UseCors()</c>
    /// applies the application's default policy to every endpoint without one: with <c>AllowAnyOrigin</c> (common for a
    /// public API) any site the operator visits could read the local-only dashboard. <c>Sec-Fetch-Site</c> tells where
    /// the request comes from; a browser that does not send it is judged by its <c>Origin</c>.
    /// </summary>
    internal static bool IsOtherSitesScript(HttpContext http)
    {
        var origin = http.Request.Headers.Origin.ToString();
        if (origin.Length == 0 || http.GetEndpoint()?.Metadata.GetMetadata<Microsoft.AspNetCore.Cors.Infrastructure.ICorsMetadata>() is not null)
        {
            return false;
        }

        var fetchSite = http.Request.Headers["Sec-Fetch-Site"].ToString();
        return fetchSite.Length > 0 ? fetchSite is not ("same-origin" or "none") : !IsSameOrigin(origin, http.Request);
    }

    /// <summary>
    /// True when <paramref name="origin"/> (an <c>Origin</c> header, which browsers write in ASCII, an IPv6 host in
    /// brackets) is the request's own scheme, host and port.
    /// </summary>
    internal static bool IsSameOrigin(string origin, HttpRequest request) =>
        Uri.TryCreate(origin, UriKind.Absolute, out var uri)
        && string.Equals(uri.Scheme, request.Scheme, StringComparison.OrdinalIgnoreCase)
        && string.Equals(uri.Host, request.Host.Host, StringComparison.OrdinalIgnoreCase)
        && uri.Port == (request.Host.Port ?? (request.IsHttps ? 443 : 80));

    /// <summary>True when the endpoint requires authorization (and does not also allow anonymous users).</summary>
    internal static bool HasAuthorizationPolicy(HttpContext http)
    {
        var metadata = http.GetEndpoint()?.Metadata;
        if (metadata is null || metadata.GetMetadata<IAllowAnonymous>() is not null)
        {
            return false;
        }

        return metadata.GetOrderedMetadata<IAuthorizeData>().Count > 0
            || metadata.GetMetadata<AuthorizationPolicy>() is not null
            || metadata.GetOrderedMetadata<IAuthorizationRequirementData>().Count > 0;
    }

    /// <summary>
    /// A local request: the TCP peer is loopback, every client address that a forwarded header names is loopback too
    /// (<c>X-Original-For</c>, where ASP.NET Core's forwarded-headers middleware keeps the peer it replaced, and any raw
    /// <c>X-Forwarded-For</c> or <c>Forwarded</c> still present), and the <c>Host</c> is a loopback name (and so is the
    /// <c>X-Original-Host</c> the middleware keeps when it rewrites the host), so a page whose
    /// name an attacker re-pointed at 127.0.0.1 (DNS rebinding) is refused. Anything unknown or unparsable is not local.
    /// </summary>
    internal static bool IsLocal(HttpContext http)
    {
        if (http.Connection.RemoteIpAddress is not { } remote || !IPAddress.IsLoopback(remote))
        {
            return false;
        }

        var headers = http.Request.Headers;
        return AllLoopback(headers["X-Original-For"], ForwardedFor.XForwardedFor)
            && AllLoopback(headers["X-Forwarded-For"], ForwardedFor.XForwardedFor)
            && AllLoopback(headers["Forwarded"], ForwardedFor.Forwarded)
            && IsLoopbackName(http.Request.Host)
            && headers["X-Original-Host"].All(original => IsLoopbackName(new HostString(original ?? "")));
    }

    /// <summary><c>localhost</c>, a name under <c>.localhost</c> (RFC 6761), or a loopback address literal.</summary>
    internal static bool IsLoopbackName(HostString host)
    {
        if (!host.HasValue)
        {
            return false;
        }

        var name = host.Host.TrimEnd('.');
        if (name.Equals("localhost", StringComparison.OrdinalIgnoreCase)
            || name.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        // Only the dotted quad or a bracketed IPv6 literal: IPAddress.TryParse also takes "127.1" and "2130706433".
        if (name.StartsWith('[') && name.EndsWith(']'))
        {
            return IPAddress.TryParse(name.AsSpan(1, name.Length - 2), out var v6) && IPAddress.IsLoopback(v6);
        }

        return name.Count(c => c == '.') == 3 && IPAddress.TryParse(name, out var v4)
            && v4.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && IPAddress.IsLoopback(v4);
    }

    private enum ForwardedFor
    {
        XForwardedFor,
        Forwarded,
    }

    private static bool AllLoopback(Microsoft.Extensions.Primitives.StringValues values, ForwardedFor syntax)
    {
        foreach (var value in values)
        {
            foreach (var element in (value ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                if (syntax == ForwardedFor.XForwardedFor)
                {
                    if (!IsLoopbackNode(element))
                    {
                        return false;
                    }

                    continue;
                }

                // Forwarded: for=node;by=node;proto=...; only the for= pairs name a client.
                foreach (var pair in element.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                {
                    var equals = pair.IndexOf('=', StringComparison.Ordinal);
                    if (equals > 0 && pair.AsSpan(0, equals).Trim().Equals("for", StringComparison.OrdinalIgnoreCase)
                        && !IsLoopbackNode(pair[(equals + 1)..].Trim().Trim('"')))
                    {
                        return false;
                    }
                }
            }
        }

        return true;
    }

    /// <summary>An address with or without a port: <c>127.0.0.1</c>, <c>127.0.0.1:5000</c>, <c>::1</c>, <c>[::1]:5000</c>.</summary>
    private static bool IsLoopbackNode(string node)
    {
        if (IPAddress.TryParse(node, out var address))
        {
            return IPAddress.IsLoopback(address);
        }

        return IPEndPoint.TryParse(node, out var endPoint) && IPAddress.IsLoopback(endPoint.Address);
    }
}
