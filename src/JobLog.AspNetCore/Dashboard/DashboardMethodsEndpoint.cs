using JobLog.AspNetCore.Dashboard.Html;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;
using Microsoft.AspNetCore.Routing.Template;
using Microsoft.Extensions.DependencyInjection;

namespace JobLog.AspNetCore.Dashboard;

/// <summary>
/// What the dashboard answers where none of its routes takes the request: <c>OPTIONS</c> (RFC 9110 §9.3.7: which methods
/// the resource takes) is a 204 whose <c>Allow</c> lists the methods of the dashboard's routes that match the path,
/// <c>OPTIONS</c> included, with no body; another method those routes do not take is a 405 with the same <c>Allow</c>;
/// a path no route matches is a 404, whatever the method. A CORS preflight is the application's business: with CORS on
/// the dashboard (<c>UseCors</c>, <c>RequireCors</c>) the CORS middleware answers it, without it this answer grants nothing.
/// </summary>
internal static class DashboardMethodsEndpoint
{
    public static void Map(IEndpointRouteBuilder endpoints, RouteGroupBuilder group, string prefix, JobLogDashboardOptions options)
    {
        ((IEndpointConventionBuilder)group).Add(endpoint => endpoint.Metadata.Add(DashboardRoute.Instance));
        Route[]? routes = null;

        // Any method, below every route of the group: reached only when none of them takes the request.
        group.Map("/{**rest}", (HttpContext http) =>
        {
            routes ??= Routes(endpoints, http.RequestServices.GetRequiredService<ParameterPolicyFactory>());
            var allow = new List<string>();
            foreach (var route in routes)
            {
                if (route.Matches(http))
                {
                    allow.AddRange(route.Methods.Where(m => !allow.Contains(m, StringComparer.OrdinalIgnoreCase)));
                }
            }

            if (allow.Count == 0)
            {
                // The API answers in problem details, an id that is not one (api/tasks/zzz) and a mistyped route included;
                // a page says so in the dashboard's frame (a cut id in a link from an alert: a blank 404 left the
                // browser's own error page).
                return http.Request.RouteValues["rest"] is string rest && rest.StartsWith("api/", StringComparison.Ordinal)
                    ? DashboardEndpoints.Problem(StatusCodes.Status404NotFound, "No such API route, or not an id of one.")
                    : DashboardEndpoints.NotFoundPage(
                        new PageContext(http, prefix, options, DashboardEndpoints.Now(http)), "page", "The dashboard has no page at this address, or its id is not one.");
            }

            allow.Add(HttpMethods.Options);
            http.Response.Headers.Allow = string.Join(", ", allow);
            return HttpMethods.IsOptions(http.Request.Method) ? Results.NoContent() : Results.StatusCode(StatusCodes.Status405MethodNotAllowed);
        }).WithMetadata(OptionsRoute.Instance);
    }

    /// <summary>The dashboard's routes but this one, with their methods and their parameters' constraints.</summary>
    private static Route[] Routes(IEndpointRouteBuilder endpoints, ParameterPolicyFactory policies) =>
        [.. endpoints.DataSources.SelectMany(source => source.Endpoints).OfType<RouteEndpoint>()
            .Where(e => e.Metadata.GetMetadata<DashboardRoute>() is not null && e.Metadata.GetMetadata<OptionsRoute>() is null)
            .Select(e => new Route(
                new TemplateMatcher(new RouteTemplate(e.RoutePattern), new RouteValueDictionary(e.RoutePattern.Defaults)),
                [.. e.RoutePattern.Parameters.SelectMany(p => p.ParameterPolicies.Select(r => (p.Name, policies.Create(p, r))))
                    .Where(c => c.Item2 is IRouteConstraint).Select(c => (c.Name, (IRouteConstraint)c.Item2))],
                e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? [HttpMethods.Get]))];

    private sealed record Route(TemplateMatcher Matcher, (string Name, IRouteConstraint Constraint)[] Constraints, IReadOnlyList<string> Methods)
    {
        public bool Matches(HttpContext http)
        {
            var values = new RouteValueDictionary();
            return Matcher.TryMatch(http.Request.Path, values)
                && Constraints.All(c => c.Constraint.Match(http, null, c.Name, values, RouteDirection.IncomingRequest));
        }
    }

    /// <summary>Marks the dashboard's endpoints.</summary>
    private sealed class DashboardRoute
    {
        public static readonly DashboardRoute Instance = new();
    }

    /// <summary>Marks this endpoint, which answers where the others do not.</summary>
    private sealed class OptionsRoute
    {
        public static readonly OptionsRoute Instance = new();
    }
}
