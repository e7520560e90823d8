using Microsoft.AspNetCore.Http;

namespace JobLog.AspNetCore.Requests;

/// <summary>
/// Where the application maps JobLog's dashboard (<c>MapJobLogDashboard</c>), shared with the request recording through the
/// application builder's properties: a request under it that none of its endpoints takes (a 404 for a path the dashboard
/// does not have: no endpoint; a 405 for a method it does not answer: routing's own endpoint, no route's) is the dashboard's, not the application's traffic, and is not recorded,
/// as the dashboard's own endpoints are not (<c>JobLogExempt</c>).
/// </summary>
internal sealed class DashboardPrefixes
{
    private const string Key = "JobLog.DashboardPrefixes";
    private volatile PathString[] _prefixes = [];

    /// <summary>The application's list: made by whichever of <c>UseJobLogRequests</c> and <c>MapJobLogDashboard</c> comes first.</summary>
    public static DashboardPrefixes Of(IDictionary<string, object?> properties)
    {
        lock (properties)
        {
            if (properties.TryGetValue(Key, out var found) && found is DashboardPrefixes prefixes)
            {
                return prefixes;
            }

            var made = new DashboardPrefixes();
            properties[Key] = made;
            return made;
        }
    }

    public void Add(PathString prefix)
    {
        lock (this)
        {
            _prefixes = [.. _prefixes, prefix];
        }
    }

    public bool Contains(PathString path)
    {
        foreach (var prefix in _prefixes)
        {
            if (path.StartsWithSegments(prefix, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }
}
