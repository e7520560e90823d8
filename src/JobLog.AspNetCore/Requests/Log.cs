using Microsoft.Extensions.Logging;

namespace JobLog.AspNetCore.Requests;

/// <summary>Inbound request logging's messages (event ids 2000–2049) and the dashboard's (2050–2099).</summary>
internal static partial class Log
{
    [LoggerMessage(2001, LogLevel.Warning, "JobLog could not record the request {Method} {Path}; the request goes on.")]
    public static partial void RequestNotRecorded(ILogger logger, Exception exception, string method, string path);

    [LoggerMessage(2002, LogLevel.Warning, "UseJobLogRequests() runs before routing: endpoint metadata (JobLogExempt, HideRequestBody, slug) is only known after the endpoint ran, so exempt endpoints are still recorded. Call it after UseRouting().")]
    public static partial void BeforeRouting(ILogger logger);

    [LoggerMessage(2003, LogLevel.Debug, "JobLog could not flush the captured response body of {Path}.")]
    public static partial void ResponseFlushFailed(ILogger logger, Exception exception, string path);

    [LoggerMessage(2050, LogLevel.Warning, "The JobLog dashboard could not read the ledger for {Count} request(s) since the last report (reported at most once per 10 s), the last {Path}: the database is down, or its schema is not migrated yet; they were answered 503.")]
    public static partial void DashboardLedgerUnavailable(ILogger logger, Exception exception, long count, string path);
}
