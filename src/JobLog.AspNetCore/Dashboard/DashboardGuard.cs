using System.Net;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;

namespace JobLog.AspNetCore.Dashboard;

/// <summary>
/// Runs before every dashboard endpoint: sets the security headers and, unless the application put an authorization
/// policy on the dashboard, serves loopback requests only (403 for the rest), as Hangfire's
/// <c>LocalRequestsOnlyAuthorizationFilter</c> does. With a policy, ASP.NET Core's authorization middleware has
/// already decided by the time this runs.
/// </summary>
internal sealed class DashboardGuard : IEndpointFilter
{
    /// <summary>No inline script or style, no plug-ins, no framing, requests and forms to this origin only.</summary>
    public const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

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

        if (!HasAuthorizationPolicy(http) && !IsLocal(http.Connection))
        {
            return Results.Text(
                "The JobLog dashboard only answers local requests. Add an authorization policy to open it to others: app.MapJobLogDashboard().RequireAuthorization(...).",
                "text/plain; charset=utf-8",
                statusCode: StatusCodes.Status403Forbidden);
        }

        return await next(context).ConfigureAwait(false);
    }

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

    /// <summary>Loopback, or the server's own address. An unknown remote address is not local.</summary>
    internal static bool IsLocal(ConnectionInfo connection)
    {
        var remote = connection.RemoteIpAddress;
        if (remote is null)
        {
            return false;
        }

        if (IPAddress.IsLoopback(remote))
        {
            return true;
        }

        return connection.LocalIpAddress is { } local && remote.Equals(local);
    }
}
