#!/usr/bin/env bash
# Build images/$IMAGE, push it to this environment's registry as $PREFIX/platform/$IMAGE, and fail unless ECR's
# scan of the pushed digest finishes with no critical or high finding. Run by platform-images.yml with AWS
# credentials for one environment; IMAGE, PREFIX and AWS_REGION come from the job, GITHUB_SHA and
# GITHUB_STEP_SUMMARY from GitHub.
set -euo pipefail

account=$(aws sts get-caller-identity --query Account --output text)
registry="$account.dkr.ecr.$AWS_REGION.amazonaws.com"
repository="$PREFIX/platform/$IMAGE"
version=$(sed -n 's/.*org.opencontainers.image.version="\([^"]*\)".*/\1/p' "images/$IMAGE/Dockerfile")
if [ -z "$version" ]; then
  echo "::error::images/$IMAGE/Dockerfile has no org.opencontainers.image.version label"
  exit 1
fi
# Tags are immutable in the platform's registries: a rerun the same day reuses the day's image, and the weekly
# run builds anew on the base image's latest fixes.
tag="$version-${GITHUB_SHA::12}-$(date -u +%Y%m%d)"

if ! found=$(aws ecr describe-images --repository-name "$repository" --image-ids imageTag="$tag" 2>&1); then
  if ! grep -q ImageNotFoundException <<<"$found"; then
    echo "::error::reading $repository: $found"
    exit 1
  fi
  aws ecr get-login-password | docker login --username AWS --password-stdin "$registry"
  docker build --pull --tag "$registry/$repository:$tag" "images/$IMAGE"
  docker push "$registry/$repository:$tag"
fi
digest=$(aws ecr describe-images --repository-name "$repository" --image-ids imageTag="$tag" \
  --query 'imageDetails[0].imageDigest' --output text)

# Basic scanning reports COMPLETE, Inspector's enhanced scanning ACTIVE; a repository that basic scanning does
# not scan on push gets a scan started here.
scan_type=$(aws ecr get-registry-scanning-configuration --query 'scanningConfiguration.scanType' --output text)
started=no
for _ in $(seq 1 80); do
  if ! result=$(aws ecr describe-image-scan-findings --repository-name "$repository" --image-id imageDigest="$digest" \
    --query '{status: imageScanStatus.status, counts: imageScanFindings.findingSeverityCounts}' --output json 2>&1); then
    if grep -q ScanNotFoundException <<<"$result" && [ "$scan_type" = BASIC ] && [ "$started" = no ]; then
      aws ecr start-image-scan --repository-name "$repository" --image-id imageDigest="$digest" >/dev/null
      started=yes
      sleep 15
      continue
    fi
    echo "::error::no scan of $repository@$digest ($scan_type scanning): $result"
    exit 1
  fi
  status=$(jq -r '.status' <<<"$result")
  case "$status" in
    COMPLETE | ACTIVE) break ;;
    IN_PROGRESS | PENDING) sleep 15 ;;
    *)
      echo "::error::the scan of $repository@$digest ended $status; the image cannot be judged"
      exit 1
      ;;
  esac
done
if [ "$status" != COMPLETE ] && [ "$status" != ACTIVE ]; then
  echo "::error::the scan of $repository@$digest did not finish in 20 minutes"
  exit 1
fi

counts=$(jq -c '.counts // {}' <<<"$result")
{
  echo "### $IMAGE in $PREFIX: \`$registry/$repository@$digest\`"
  echo "tag $tag; $scan_type scan; findings by severity: $counts"
} >>"$GITHUB_STEP_SUMMARY"
blocking=$(jq '(.CRITICAL // 0) + (.HIGH // 0)' <<<"$counts")
if [ "$blocking" -gt 0 ]; then
  echo "::error::$IMAGE has $blocking critical or high finding(s); fix the image or its pins before a stack runs it"
  exit 1
fi
